"""`airlock run` of private retrieval with each party in its own Ray actor
process, then `airlock audit`: the databases saw only PIR queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.pir.tests.test_protocol import rag_text
from tests.helpers import airlock

pytestmark = pytest.mark.ray


def test_private_rag_on_ray_then_audit(tmp_path: Path) -> None:
    path = tmp_path / "rag.toml"
    path.write_text(rag_text("simplepir"))
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (retrieved,) = [a["result"] for a in manifest["actions"] if a["action"] == "retrieve"]
    assert retrieved["errors"] == [] and len(retrieved["answers"]) == 5
    audit = airlock("audit", str(run_dir), "--format", "json")
    assert audit.returncode == 0, audit.stdout
    seen = json.loads(audit.stdout)["visibility"]
    assert seen["guidelines_a"]["query:alice"] == "ciphertext"
