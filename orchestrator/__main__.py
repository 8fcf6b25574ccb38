"""`python -m orchestrator` is the `airlock` command."""

from orchestrator.cli import main

main()
