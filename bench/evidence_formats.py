"""The standard evidence formats against Airlock's own form of the same
evidence, same run: bytes, time to issue and time to check.

    .venv/bin/python bench/evidence_formats.py [--repeat 200] [--json FILE]

Pairs (standard / baseline, the same content each time):

- receipt: the enclave's COSE_Sign1 receipt (pycose to check) / its DSSE
  in-toto receipt (securesystemslib, in-toto-attestation);
- attestation result: the verifier's EAR as a JWT (PyJWT to check) / the
  same appraisal as a DSSE in-toto statement (as results were before);
- tree head: the ledger's C2SP checkpoint in a signed note / the same size
  and root signed as canonical JSON (as heads were before);
- provenance: the SLSA v1 predicate of a training run, signed in DSSE /
  the model statement's training fields signed in DSSE.

Times are the best per item over `--repeat` items, one thread, Ed25519
keys from `cryptography`. Figures, not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402

from bench.figures import Figures, add_json_option  # noqa: E402
from bench.timing import best  # noqa: E402
from evidence.canonical import canonical_json  # noqa: E402
from evidence.cose_receipts import issue_cose_receipt, open_cose_receipt  # noqa: E402
from evidence.receipts import issue_receipt, open_receipt  # noqa: E402
from evidence.signed_note import open_note, sign_note  # noqa: E402
from evidence.statements import PartySigner, open_statement, sign_statement  # noqa: E402
from protocols.artifacts import TrainingRun  # noqa: E402
from protocols.attestation.model import DatasetReference  # noqa: E402
from protocols.attestation.provenance import training_provenance  # noqa: E402
from protocols.tee.ear import AFFIRMING_VECTOR, issue_ear, open_ear  # noqa: E402

KEY = ed25519.Ed25519PrivateKey.generate()
SIGNER = PartySigner(KEY.public_key(), KEY.sign)
ROOT, NONCE = os.urandom(32), os.urandom(16)
APPRAISAL = {
    "root_of_trust": "simulated hardware root of trust (no TEE hardware here)",
    "enclave": "enclave",
    **{k: os.urandom(32).hex() for k in ("measurement", "model_root", "hpke_public_key")},
    **{k: os.urandom(32).hex() for k in ("receipt_public_key", "vendor_root_sha256")},
}
TRAINING = TrainingRun(
    protocol="federated",
    mode="secagg+dp",
    rounds=2,
    survivors=("hospital_1", "hospital_2"),
    epsilon=5.979,
    delta=1e-5,
    settings={"mode": "secagg+dp", "rounds": 2, "clip": 0.02, "noise_multiplier": 1.0},
    base_model_sha256=os.urandom(32).hex(),
    started="2026-12-05T10:00:00Z",
    finished="2026-12-05T10:01:00Z",
)
DATASETS = [DatasetReference(f"train:hospital_{i}", os.urandom(32).hex()) for i in (1, 2, 3)]
RESULT = "urn:airlock:predicate:attestation-result:v1"  # how results were signed before EARs
LEAVES = {d.name: os.urandom(32).hex() for d in DATASETS}


def figure(
    issue: Callable[[], Any], check: Callable[[Any], object], size: Callable[[Any], int], n: int
) -> dict[str, float]:
    made = issue()
    check(made)  # it checks, before it is timed
    return {
        "bytes": size(made),
        "issue_us": best(issue, n) * 1e6,
        "check_us": best(lambda: check(made), n) * 1e6,
    }


def json_size(data: Any) -> int:
    return len(json.dumps(data).encode())


def statement_of(predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
    return sign_statement("subject", ROOT.hex(), predicate_type, predicate, SIGNER)


def pairs(n: int) -> dict[str, tuple[dict[str, float], dict[str, float]]]:
    public = KEY.public_key()
    receipt = ("abcd" * 16, "ef01" * 16)
    head = {"ledger": "ledger", "size": 23, "root": ROOT.hex()}
    text = f"airlock/ledger/ledger\n23\n{base64.b64encode(ROOT).decode()}\n"
    return {
        "receipt (COSE_Sign1 / DSSE)": (
            figure(
                lambda: issue_cose_receipt("enclave", ROOT, *receipt, NONCE, SIGNER),
                lambda made: open_cose_receipt(made, public),
                len,
                n,
            ),
            figure(
                lambda: issue_receipt(ROOT, b"prompt", b"answer", NONCE, "enclave", SIGNER),
                lambda made: open_receipt(made, public),
                json_size,
                n,
            ),
        ),
        "attestation result (EAR JWT / DSSE)": (
            figure(
                lambda: issue_ear(NONCE, AFFIRMING_VECTOR, APPRAISAL, KEY.sign),
                lambda made: open_ear(made, public, "bench"),
                lambda made: len(made.encode()),
                n,
            ),
            figure(
                lambda: statement_of("urn:airlock:predicate:attestation-result:v1", APPRAISAL),
                lambda made: open_statement(
                    made, public, "urn:airlock:predicate:attestation-result:v1", "b"
                ),
                json_size,
                n,
            ),
        ),
        "tree head (C2SP checkpoint / JSON)": (
            figure(
                lambda: sign_note(text, "airlock/ledger/ledger", public, KEY.sign),
                lambda made: open_note(made, "airlock/ledger/ledger", public),
                lambda made: len(made.encode()),
                n,
            ),
            figure(
                lambda: {**head, "signature": KEY.sign(canonical_json(head)).hex()},
                lambda made: public.verify(bytes.fromhex(made["signature"]), canonical_json(head)),
                json_size,
                n,
            ),
        ),
        "training (SLSA v1 provenance / model statement fields)": (
            figure(
                lambda: statement_of(
                    "https://slsa.dev/provenance/v1",
                    training_provenance("model_creator", TRAINING, DATASETS, LEAVES),
                ),
                lambda made: open_statement(made, public, "https://slsa.dev/provenance/v1", "b"),
                json_size,
                n,
            ),
            figure(
                lambda: statement_of("urn:b", {"training": TRAINING.statement_fields()}),
                lambda made: open_statement(made, public, "urn:b", "b"),
                json_size,
                n,
            ),
        ),
    }


# the ratio keys in --json: <short>_<bytes|issue|check>_vs_own
SHORT = {
    "receipt (COSE_Sign1 / DSSE)": "cose_receipt",
    "attestation result (EAR JWT / DSSE)": "ear",
    "tree head (C2SP checkpoint / JSON)": "checkpoint",
    "training (SLSA v1 provenance / model statement fields)": "slsa_provenance",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=200, help="best of N per figure")
    add_json_option(parser)
    args = parser.parse_args()
    rows = pairs(args.repeat)
    header = ("evidence (standard / baseline)", "bytes", "issue µs", "check µs")
    print("| " + " | ".join((*header, "bytes ×", "issue ×", "check ×")) + " |")
    print("|---|---|---|---|---|---|---|")
    figures = Figures()
    for name, (standard, baseline) in rows.items():
        ratio = {k: standard[k] / baseline[k] for k in standard}
        figures.row("formats", evidence=name, standard=standard, baseline=baseline)
        for figure, value in ratio.items():
            figures.ratio(f"{SHORT[name]}_{figure.removesuffix('_us')}_vs_own", value)
        print(
            f"| {name} | {standard['bytes']:.0f} / {baseline['bytes']:.0f} "
            f"| {standard['issue_us']:.0f} / {baseline['issue_us']:.0f} "
            f"| {standard['check_us']:.0f} / {baseline['check_us']:.0f} "
            f"| {ratio['bytes']:.2f} | {ratio['issue_us']:.2f} | {ratio['check_us']:.2f} |"
        )
    figures.write(args.json)


if __name__ == "__main__":
    main()
