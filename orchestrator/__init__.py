"""The orchestrator: scenarios, the launcher, the audit and the `airlock` CLI."""
