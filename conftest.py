"""Fixtures shared by tests/ and the tests inside protocols/*/."""

from tests.helpers import default_run, parties, ray_address_file_kept, run_copy  # noqa: F401
