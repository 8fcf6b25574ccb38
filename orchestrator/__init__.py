"""The orchestrator: scenarios, the launcher, the audit and the `airlock` CLI."""

import os

# Set before Ray is imported anywhere in this process (Ray reads them at
# import time). Ray otherwise resolves 127.0.0.1 to the machine's outward
# interface; Airlock keeps all of its traffic, Ray's included, on loopback.
# Clusters started with `ray start` use token authentication; a driver must
# say so to connect. No usage statistics leave the machine.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
