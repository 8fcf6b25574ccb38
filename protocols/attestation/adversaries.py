"""Dishonest behaviours of attestation parties, played in scenarios and tests.
Honest code never calls these; roles.py hands over to them when a party
plays the named adversary."""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner, Signer

from parties.errors import ClaimFailed
from parties.protocol import PartyContext
from protocols.attestation.dataset import Dataset, ExclusionProof
from protocols.attestation.ledger import TransparencyLog
from protocols.attestation.model import DatasetReference

# adversary `unattested_dataset`: what a model creator adds to the datasets
# its model statement names, a dataset no contributor attested (scraped data)
UNATTESTED_DATASET = DatasetReference(
    "train:web_scrape", hashlib.sha256(b"scraped pages").hexdigest()
)


def forged_signer() -> Signer:
    """adversary `forge_statement`: a contributor signs its statement with a
    key that is not its certified one (as if passing off another's statement)."""
    return CryptoSigner(ed25519.Ed25519PrivateKey.generate())


def split_view_log(ctx: PartyContext, asker: str) -> TransparencyLog:
    """adversary `split_view`: the ledger keeps one log per party, so each
    sees a history of its own that stays consistent, and none sees the others'."""
    forks: dict[str, TransparencyLog] = ctx.state.setdefault("forks", {})
    return forks.setdefault(asker, TransparencyLog(ctx.name, ctx.sign))


class OutOfOrderDataset(Dataset):
    """adversary `hide_excluded`: a contributor that places the records of the
    domains it must exclude first, out of key order, and proves exclusion
    from the neighbours in the sorted rest, as if those records were absent."""

    def __init__(self, *args: Any, hidden: tuple[str, ...], **kwargs: Any) -> None:
        self.hidden = hidden
        super().__init__(*args, **kwargs)

    def _is_hidden(self, key: str) -> bool:
        return key.startswith(self.hidden)

    def _arrange(self, keyed: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        return [p for p in keyed if self._is_hidden(p[0])] + [
            p for p in keyed if not self._is_hidden(p[0])
        ]

    def prove_exclusion(self, prefix: str) -> ExclusionProof:
        start = sum(1 for key in self.keys if self._is_hidden(key))
        rest = self.keys[start:]
        first = start + next((i for i, key in enumerate(rest) if key >= prefix), len(rest))
        if first == start:
            raise ClaimFailed(f"exclusion of {prefix!r}", "no record sorts before the prefix")
        before = self._proof(first - 1)
        after = self._proof(first) if first < len(self.keys) else None
        return ExclusionProof(prefix, before, after)
