"""What one protocol's stage leaves in a party's own store for another
protocol's later stage (parties/store.py): the hand-offs of the pipeline.

Each is declared here, once, because two protocols name it: the one that
writes it and the one that reads it. The store stays with its party; only
the names and types are shared.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from models.checkpoint import served_model
from models.transformer import Transformer
from parties.protocol import PartyContext
from parties.store import Kept


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AcceptedDataset(_Frozen):
    """A dataset attestation the model creator checked and accepted."""

    contributor: str
    name: str
    sha256: str


class AcceptedDatasets(_Frozen):
    datasets: tuple[AcceptedDataset, ...] = ()

    @property
    def contributors(self) -> frozenset[str]:
        return frozenset(d.contributor for d in self.datasets)


class TrainingRun(_Frozen):
    """How the kept model was trained: what its commitment states (the
    fields up to `delta`) and its provenance adds."""

    protocol: str
    mode: str
    rounds: int
    survivors: tuple[str, ...]
    epsilon: float | None
    delta: float | None
    settings: dict[str, Any]  # the training stage's, as the scenario gave them
    base_model_sha256: str
    started: str  # RFC 3339
    finished: str

    def statement_fields(self) -> dict[str, Any]:
        """What the model statement says of the training."""
        return self.model_dump(
            include={"protocol", "mode", "rounds", "survivors", "epsilon", "delta"}
        )


class Countersignatures(_Frozen):
    """Countersignatures of the final model (evidence/countersignatures.py),
    each a DSSE envelope, by the contributor that signed it."""

    envelopes: dict[str, dict[str, Any]] = {}


class CommittedModel(_Frozen):
    """The model commitment a party accepted (logged by the ledger, signed by
    the creator): answers are accepted only from the model with this root."""

    creator: str
    model: str
    root_sha256: str


class Retrieved(_Frozen):
    """What an end user retrieved privately: for each question, the
    documents found, best first."""

    questions: tuple[str, ...]
    documents: tuple[tuple[str, ...], ...]


class LedgerHead(_Frozen):
    """The last signed head of the ledger a party was shown (its signed
    checkpoint): every head it is shown later, in any protocol, must extend it."""

    checkpoint: str


# the model creator: written by attestation's dataset part, read by federated
ACCEPTED_DATASETS = Kept("attestation.accepted-datasets", AcceptedDatasets)
# the model creator: written by federated, read by attestation, tee and mpc
TRAINED_MODEL = Kept("federated.trained-model", bytes)
TRAINING_RUN = Kept("federated.training-run", TrainingRun)
# the countersignatures of the final model: a contributor keeps its own (it
# logs it in the ledger in attestation's commitment part), the model creator
# those its contributors gave it (its model statement carries them); written
# by federated, read by attestation
COUNTERSIGNATURES = Kept("federated.countersignatures", Countersignatures)
# end users (and deployers): written by attestation's commitment part, read by tee
COMMITTED_MODEL = Kept("attestation.committed-model", CommittedModel)
# end users: written by pir, read by tee (the prompts it sends to the enclave)
RETRIEVED = Kept("pir.retrieved", Retrieved)

# whoever logs in the ledger or is shown its heads: written by attestation's
# and tee's submissions, read by the next one and by attestation's ledger audit
LEDGER_HEAD = Kept("ledger.last-head", LedgerHead)

# where a serving or committing stage takes its model from
ModelSource = Literal["checkpoint", "trained"]


def model_to_serve(ctx: PartyContext, source: ModelSource) -> Transformer:
    """The shipped checkpoint, or the model this party trained in an earlier
    stage (its store's TRAINED_MODEL)."""
    if source == "trained":
        return Transformer.from_bytes(ctx.store.get(TRAINED_MODEL))
    return served_model()
