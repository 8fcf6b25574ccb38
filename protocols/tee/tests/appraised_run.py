"""A stand-in for a tee run's evidence, for `protocols.tee.verify`'s checks:
alice sent the verifier one appraisal request and admitted one EAR back,
both signed by `key`; what alice published lies under `directory`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from protocols.tee.ear import AFFIRMING_VECTOR, issue_ear


class AppraisedRun:
    def __init__(
        self,
        key: ed25519.Ed25519PrivateKey,
        asked: bytes,
        answered: bytes,
        appraisal: dict[str, Any],
        directory: Path = Path("/nonexistent"),  # default: nothing published
    ) -> None:
        self._key, self.asked, self.directory = key, asked, directory
        self.ear = issue_ear(answered, AFFIRMING_VECTOR, appraisal, key.sign)

    def parties(self, role: str | None = None) -> list[str]:
        return {"verifier": ["verifier"], "end_user": ["alice"]}.get(str(role), [])

    def key(self, party: str) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()

    def received(self, party: str, step: str) -> list[tuple[dict[str, Any], bytes]]:
        if (party, step) == ("verifier", "appraisal_request"):
            return [({"sender": "alice"}, json.dumps({"nonce": self.asked.hex()}).encode())]
        if (party, step) == ("alice", "attestation_result"):
            return [({"sender": "verifier", "index": 7}, json.dumps({"ear": self.ear}).encode())]
        return []
