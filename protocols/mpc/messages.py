"""What each mpc step carries (parties.message).

Every share travels as safetensors behind a JSON header: the weight shares
with the model's configuration (each field as a decimal string) and the
root of the weights; a prompt share with, under `log_receipts`, what the
receipts must name; a logit share with, under `log_receipts`, the compute
party's receipt and the ledger's answer (or why it is not logged). Each
CrypTen message is its kind and its tensors' count (communicator.py); a
tuple request is sizes only and a seed request nothing (dealer.py). The ledger's steps are the
attestation protocol's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints

from parties.message import Body, Empty, Fields, Message, framed, hex_bytes, json_message
from protocols.attestation.messages import (
    LOGGED_MESSAGE,
    SUBMIT_MESSAGE,
    LedgerAnswer,
    SignedStatement,
)
from protocols.mpc.dealer import MAX_BULK, MAX_REQUEST_ELEMENTS
from protocols.mpc.randomness import KEY_BYTES
from protocols.mpc.rules import Step

# a positive whole number as `str(int)` writes it: no sign, no leading zero
Count = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,8}$")]


class WeightShares(Fields):
    """The header of the weight shares: the model's configuration, each
    field of `ModelConfig` as a decimal string, and the root of the weights
    (float32_weights_root), which receipts name."""

    vocab: Count
    context: Count
    width: Count
    layers: Count
    heads: Count
    hidden: Count
    model_sha256: hex_bytes(32)  # type: ignore[valid-type]


class ReceiptRequest(Fields):
    """What both receipts for one token must name (receipts.Expected.request)."""

    nonce: hex_bytes(16)  # type: ignore[valid-type]
    input_sha256: hex_bytes(32)  # type: ignore[valid-type]  # the user's salted commitment
    since: int = Field(ge=0)  # the size of the last ledger head the user saw


class PromptShares(RootModel[ReceiptRequest | Empty]):
    """Nothing, or (with `log_receipts`) what the receipts must name."""


class LoggedReceipt(Fields):
    receipt: SignedStatement
    ledger: LedgerAnswer


class UnloggedReceipt(Fields):
    receipt: SignedStatement
    unlogged: Annotated[str, StringConstraints(min_length=1, max_length=4096)]  # why not


class LogitShares(RootModel[LoggedReceipt | UnloggedReceipt | Empty]):
    """Nothing, or (with `log_receipts`) the receipt and the ledger's answer."""


# the kinds of message BoundaryCommunicator._send sends: one tensor (a
# point-to-point send, a gather, a scatter, a barrier, a small JSON object as
# uint8), or a list of them (the collectives CrypTen batches)
class OneTensor(Fields):
    kind: Literal["send", "all_gather", "gather", "scatter", "barrier", "object"]
    count: Literal[1]


class TensorList(Fields):
    kind: Literal["all_reduce", "reduce", "broadcast"]
    count: int = Field(ge=1, le=1024)  # tensors in the body, named "0", "1", ...


class MpcMessage(RootModel[Annotated[OneTensor | TensorList, Field(discriminator="kind")]]):
    """One CrypTen message: its kind and how many tensors follow."""


# no empty dimension: such a request would draw no inputs (dealer._sizes)
Dimension = Annotated[int, Field(ge=1, le=MAX_REQUEST_ELEMENTS)]
Size = Annotated[list[Dimension], Field(max_length=8)]  # a tensor's shape
NoSize = Annotated[list[Dimension], Field(max_length=0)]


class _Request(Fields):
    """What every tuple request carries: a tuple's id (both ranks ask in the
    same order, from 1) and how many tuples alike (DealerProvider asks BULK
    at a time; the dealer deals 1 to MAX_BULK)."""

    id: int = Field(ge=1)
    count: int = Field(ge=1, le=MAX_BULK)
    size0: Size


class AdditiveRequest(_Request):
    """A Beaver triple for the products the forward pass computes (model.py
    neither convolves nor passes an op keyword arguments)."""

    kind: Literal["additive"]
    op: Literal["mul", "matmul"]
    kwargs: Empty
    size1: Size


class BinaryRequest(_Request):
    kind: Literal["binary"]
    size1: Size


class OneInputRequest(_Request):
    """A square, a wrap or a B2A pair: one size only (DealerProvider sends
    an empty size1)."""

    kind: Literal["square", "wraps", "B2A"]
    size1: NoSize = []


class TupleRequest(
    RootModel[
        Annotated[AdditiveRequest | BinaryRequest | OneInputRequest, Field(discriminator="kind")]
    ]
):
    """Sizes only, of each kind of tuple the dealer deals."""


class TupleShares(Fields):
    """The last rank's corrections: one tensor per tuple asked for."""

    count: int = Field(ge=1, le=MAX_BULK)


class TupleCheck(Fields):
    """The tuples a rank drew by, through the last id: the running hash of
    their requests (dealer.extend_transcript)."""

    through: int = Field(ge=0)
    transcript: hex_bytes(32)  # type: ignore[valid-type]


class Seed(Fields):
    """A rank's seed for its tuple shares (dealer.py)."""

    seed: hex_bytes(KEY_BYTES)  # type: ignore[valid-type]


MESSAGES: dict[str, Message] = {
    Step.WEIGHT_SHARES: framed(WeightShares, Body.TENSORS),
    Step.PROMPT_SHARES: framed(PromptShares, Body.TENSORS),  # "prompt": the one-hot window
    Step.LOGIT_SHARES: framed(LogitShares, Body.TENSORS),  # "logits"
    Step.MPC_MESSAGE: framed(MpcMessage, Body.TENSORS),
    Step.SEED_REQUEST: json_message(Empty),
    Step.SEED: json_message(Seed),
    Step.TUPLE_REQUEST: json_message(TupleRequest),
    Step.TUPLE_SHARES: framed(TupleShares, Body.TENSORS),
    Step.TUPLE_CHECK: json_message(TupleCheck),
    Step.SUBMIT: SUBMIT_MESSAGE,  # the ledger's, as in the attestation protocol
    Step.LOGGED: LOGGED_MESSAGE,
}
