"""A stand-in for a tee run's evidence, for `protocols.tee.verify`'s checks:
alice took the model creator's signed reference values, then evidence from
the host (a chip of `chip_vendor`, booted with `model_root`, quoting
`receipt_key`), sent the verifier one appraisal request and admitted one
affirming EAR back; the run published its vendor's root (unless not
`publish`), and the chip is that vendor's unless `chip_vendor` is given.
Every party signs with `key`; what alice published lies under
`directory`."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.statements import PartySigner, sign_statement
from protocols.tee import channel
from protocols.tee.ear import AFFIRMING_VECTOR, issue_ear
from protocols.tee.evidence import (
    ENCLAVE_IMAGE,
    REFERENCE_PREDICATE,
    SIMULATED,
    SimulatedHardware,
    SimulatedVendor,
    measure,
    published_root,
)

ROLES = {"verifier": "verifier", "end_user": "alice", "model_creator": "model_creator"}


class AppraisedRun:
    def __init__(
        self,
        key: ed25519.Ed25519PrivateKey,
        asked: bytes,
        answered: bytes,
        receipt_key: ed25519.Ed25519PublicKey,
        model_root: bytes,
        directory: Path = Path("/nonexistent"),  # default: nothing published
        *,
        chip_vendor: SimulatedVendor | None = None,
        publish: bool = True,
    ) -> None:
        self._key, self.asked, self.directory = key, asked, directory
        vendor = SimulatedVendor()  # the run's
        self.provisioned = published_root(vendor.root) if publish else {}
        hardware = SimulatedHardware((chip_vendor or vendor).device())
        measurement = measure(ENCLAVE_IMAGE, model_root)
        hpke = channel.public_bytes(channel.new_key_pair())
        self.evidence = hardware.quote("enclave", measurement, answered, hpke, receipt_key)
        reference = {
            "measurement": measurement,
            "model_root": model_root.hex(),
            "code_sha256": "00" * 32,
            "root_of_trust": SIMULATED,
        }
        signer = PartySigner(key.public_key(), key.sign)
        self.reference = sign_statement(
            "enclave:model_creator", measurement, REFERENCE_PREDICATE, reference, signer
        )
        claims = self.evidence["claims"]
        self.appraisal = {
            "root_of_trust": SIMULATED,
            **{k: claims[k] for k in ("enclave", "measurement")},
            **{k: claims[k] for k in ("hpke_public_key", "receipt_public_key")},
            "model_root": model_root.hex(),
            "vendor_root_sha256": vendor.root.sha256,
        }
        self.ear = issue_ear(answered, AFFIRMING_VECTOR, self.appraisal, key.sign)

    def parties(self, role: str | None = None) -> list[str]:
        if role is None:
            return list(ROLES.values())
        return [ROLES[str(role)]] if str(role) in ROLES else []

    def key(self, party: str) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()

    def entries(self, party: str) -> list[dict[str, Any]]:
        return []

    def received(self, party: str, step: str) -> list[tuple[dict[str, Any], bytes]]:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        if (party, step) == ("verifier", "appraisal_request"):
            return [({"sender": "alice"}, json.dumps({"nonce": self.asked.hex()}).encode())]
        if (party, step) == ("alice", "reference_values"):
            return [({"sender": "model_creator", "index": 1}, json.dumps(self.reference).encode())]
        if (party, step) == ("alice", "evidence"):
            entry = {"sender": "deployer", "index": 5, "time": now}
            return [(entry, json.dumps(self.evidence).encode())]
        if (party, step) == ("alice", "attestation_result"):
            return [({"sender": "verifier", "index": 7}, json.dumps({"ear": self.ear}).encode())]
        return []
