"""Fixtures shared by tests/ and the tests inside protocols/*/."""

from tests.helpers import default_run, parties, run_copy  # noqa: F401
