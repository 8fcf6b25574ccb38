"""The misbehaviours the attestation protocol knows, apart from the honest
roles, each an override of an honest action or handler:

  hide_excluded       a contributor places the records it must exclude
                      first, out of key order, and "proves" their absence;
  forge_statement     a contributor signs its statement with a key that is
                      not its certified one;
  unattested_dataset  the model creator names a dataset no contributor
                      attested (scraped data) in its model statement;
  swapped_training    the model creator (which trained the model as the
                      federated aggregator) commits the shipped checkpoint
                      plus a tweak in place of the trained model, naming
                      every accepted dataset and the training run;
  swap_model          a deployer serves a smaller model than the committed one;
  rewrite_history     the ledger replaces its first entry once three exist;
  log_unverified      the ledger logs statements without checking signatures;
  split_view          the ledger keeps one log per party, so that each sees a
                      history of its own that stays consistent.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner

from evidence.statements import PartySigner
from models.checkpoint import served_model
from models.transformer import flat_parameters, set_flat_parameters
from parties.envelope import Envelope
from parties.errors import ClaimFailed
from parties.protocol import Adversary, PartyContext, Reply, state_of
from parties.roles import Role
from protocols.artifacts import TRAINED_MODEL
from protocols.attestation import contributor, creator, ledger_server
from protocols.attestation.dataset import Dataset, ExclusionProof
from protocols.attestation.ledger import TransparencyLog
from protocols.attestation.model import DatasetReference
from protocols.attestation.placeholder import placeholder_weights
from protocols.attestation.rules import Step
from protocols.attestation.serving import DeployerState, serve
from protocols.attestation.shared import Summary


class Name(enum.StrEnum):
    HIDE_EXCLUDED = "hide_excluded"
    FORGE_STATEMENT = "forge_statement"
    UNATTESTED_DATASET = "unattested_dataset"
    SWAPPED_TRAINING = "swapped_training"
    SWAP_MODEL = "swap_model"
    REWRITE_HISTORY = "rewrite_history"
    LOG_UNVERIFIED = "log_unverified"
    SPLIT_VIEW = "split_view"


class OutOfOrderDataset(Dataset):
    """hide_excluded: the records of the domains the contributor must exclude
    go first, out of key order, and exclusion is proved from the neighbours
    in the sorted rest, as if those records were absent."""

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


def hide_excluded(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    honest, holdings = contributor.dataset_of(ctx)
    dataset = OutOfOrderDataset(
        honest.name, honest.records, honest.schema, honest.sort_key, hidden=holdings.exclude
    )
    return contributor.attest(ctx, dataset, holdings.exclude, PartySigner.of(ctx))


def forge_statement(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Sign with a fresh key (as if passing off another's statement)."""
    dataset, holdings = contributor.dataset_of(ctx)
    forged = CryptoSigner(ed25519.Ed25519PrivateKey.generate())
    return contributor.attest(ctx, dataset, holdings.exclude, forged)


# what the dishonest creator adds to the datasets its model statement names
UNATTESTED_DATASET = DatasetReference(
    "train:web_scrape", hashlib.sha256(b"scraped pages").hexdigest()
)


def unattested_dataset(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    return creator.commit(ctx, params, (UNATTESTED_DATASET,))


def swapped_training(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Put the shipped checkpoint plus a tweak where the trained model is
    kept, then commit as usual: the commitment, the signed model files and
    the provenance all name the tweaked weights (and the stages that serve
    the model serve them), while each contributor countersigned the model it
    was sent."""
    tweaked = served_model()
    set_flat_parameters(tweaked, flat_parameters(tweaked) + 1e-3)
    ctx.store.put(TRAINED_MODEL, tweaked.to_bytes())
    return {**creator.commit_model(ctx, params), "swapped": True}


def swap_model(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Serve the cheaper model, while the receipt names what was served."""
    committed = state_of(ctx, DeployerState).committed(doing="an inference request")
    return serve(ctx, envelope, placeholder_weights(committed.model + "-small"))


@dataclass
class RewritingLedgerState(ledger_server.LedgerState):
    rewritten: bool = False


def rewrite_history(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Once three entries exist, replace the first (a one-byte change to its
    envelope), then go on logging as usual."""
    statement, since = ledger_server.submission(envelope)
    ledger_server.check_signed(ctx, envelope, statement)
    state = state_of(ctx, RewritingLedgerState)
    log = state.log_for(ctx, envelope.header.sender)
    if len(log.entries) >= 3 and not state.rewritten:
        log.rewrite(0, log.entries[0].replace(b'"payloadType"', b'"payloadType" '))
        state.rewritten = True
    return ledger_server.append(ctx, envelope, statement, since)


def log_unverified(ctx: PartyContext, envelope: Envelope) -> Reply:
    statement, since = ledger_server.submission(envelope)
    return ledger_server.append(ctx, envelope, statement, since)


@dataclass
class SplitViewLedgerState(ledger_server.LedgerState):
    forks: dict[str, TransparencyLog] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def log_for(self, ctx: PartyContext, asker: str) -> TransparencyLog:
        """A log of the asker's own, which no other party sees."""
        with self._lock:
            return self.forks.setdefault(asker, TransparencyLog.of(ctx))


ADVERSARIES: dict[str, Adversary] = {
    Name.HIDE_EXCLUDED: Adversary(Role.DATA_CONTRIBUTOR, actions={"attest_dataset": hide_excluded}),
    Name.FORGE_STATEMENT: Adversary(
        Role.DATA_CONTRIBUTOR, actions={"attest_dataset": forge_statement}
    ),
    Name.UNATTESTED_DATASET: Adversary(
        Role.MODEL_CREATOR, actions={"commit_model": unattested_dataset}
    ),
    Name.SWAPPED_TRAINING: Adversary(
        Role.MODEL_CREATOR, actions={"commit_model": swapped_training}
    ),
    Name.SWAP_MODEL: Adversary(Role.DEPLOYER, handlers={Step.INFERENCE_REQUEST: swap_model}),
    Name.REWRITE_HISTORY: Adversary(
        Role.LEDGER, handlers={Step.SUBMIT: rewrite_history}, state=RewritingLedgerState
    ),
    Name.LOG_UNVERIFIED: Adversary(Role.LEDGER, handlers={Step.SUBMIT: log_unverified}),
    Name.SPLIT_VIEW: Adversary(Role.LEDGER, state=SplitViewLedgerState),
}
