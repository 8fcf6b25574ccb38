"""The committed generated code matches protos/: regenerate and compare."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_the_proto_files(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)],
        check=True,
        env={**os.environ, "PYTHON": sys.executable},
        cwd=ROOT,
        timeout=120,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert generated, "the generator wrote nothing"
    stale = [str(p) for p in generated if (ROOT / p).read_bytes() != (tmp_path / p).read_bytes()]
    assert not stale, f"regenerate with `make protos`: {stale} differ from protos/"


def test_forms_are_ordered_from_most_to_least_revealing() -> None:
    from parties.labels import Form

    order = [
        Form.PLAINTEXT,
        Form.AGGREGATE,
        Form.NOISED,
        Form.MASKED,
        Form.SHARE,
        Form.CIPHERTEXT,
        Form.DIGEST,
        Form.PUBLIC,
    ]
    assert sorted(Form) == order
    assert Form.DIGEST.reveals_at_most(Form.CIPHERTEXT)
    assert not Form.PLAINTEXT.reveals_at_most(Form.CIPHERTEXT)
