"""The compute parties and the dealer in the mpc protocol.

compute parties (the deployer, rank 0; a `compute` party, rank 1): take one
    set of weight shares, refused unless they fit the model configuration
    the creator sent with them (the one the forward pass then uses), then
    run the forward pass under CrypTen (model.py) for each prompt share.
    Every CrypTen message between them is an envelope (communicator.py),
    and every Beaver triple comes from the dealer (dealer.py). Each replies
    with its share of the logits (and, with `log_receipts`, its signed and
    logged receipt for it: receipts.py).
dealer: deals correlated randomness and sees no data.

Each compute party must run in its own process (on Ray): CrypTen's state is
per process.
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from models.transformer import ModelConfig
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.protocol import PartyContext, Reply, RoleState, sole_peer, state_of
from protocols.mpc import communicator, dealer
from protocols.mpc.communicator import pack_tensors, unpack_tensors
from protocols.mpc.model import check_weight_shares, forward, secret
from protocols.mpc.receipts import sign_and_log
from protocols.mpc.roles import Settings, compute_parties
from protocols.mpc.rules import CREATOR, DEALER, USER, Step


class ComputePhase(enum.Enum):
    AWAITING_WEIGHTS = 1
    READY = 2  # weight shares in hand: prompt shares are answered


@dataclass
class ComputeState(RoleState):
    phase: ComputePhase = ComputePhase.AWAITING_WEIGHTS
    config: ModelConfig | None = None  # the shared weights', from their metadata
    weight_shares: dict[str, torch.Tensor] = field(default_factory=dict)
    weights: dict[str, Any] | None = None  # the weight shares as CrypTen tensors, on first use
    model_root: bytes = b""  # the creator's root of the shared weights, which receipts name
    # exists before this party connects: the other rank's first message may come first
    inbox: communicator.Inbox = field(default_factory=communicator.Inbox)
    lock: threading.Lock = field(default_factory=threading.Lock)  # CrypTen's state is per process
    connected: bool = False
    # every rank but the last: has the dealer check that the last rank asked
    # for the tuples this one drew by (refused if not)
    check_tuples: Callable[[], None] | None = None


class DealerPhase(enum.Enum):
    DEALING = 1  # from the start; its Dealer tells each seed once and deals each tuple once


@dataclass
class DealerState(RoleState):
    phase: DealerPhase = DealerPhase.DEALING
    dealer: dealer.Dealer = field(default_factory=dealer.Dealer)


def on_weight_shares(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, ComputeState)
    state.expect(ComputePhase.AWAITING_WEIGHTS, doing="weight shares")
    meta, shares = unpack_tensors(envelope.payload)
    config = ModelConfig.from_metadata(meta)
    check_weight_shares(config, shares)
    root = bytes.fromhex(meta["model_sha256"])  # 32 bytes: the message's (messages.py)
    state.config, state.weight_shares, state.model_root = config, shares, root
    state.phase = ComputePhase.READY


def connect(ctx: PartyContext, state: ComputeState) -> None:
    """Install the boundary communicator and the dealer, once per process."""
    if state.connected:
        return
    ranks = compute_parties(ctx)
    if communicator.installed() is not None:
        raise AirlockError("each compute party needs its own process: run on Ray, not --in-process")
    rank = ranks.index(ctx.name)
    # every message may carry shares of the prompt or of the weights
    labels = [Label(f"prompt:{sole_peer(ctx, USER)}", Form.SHARE)]
    labels.append(Label(f"weights:{sole_peer(ctx, CREATOR)}", Form.SHARE))

    def send(peer: str, payload: bytes) -> None:
        ctx.deliver(peer, Step.MPC_MESSAGE, labels, payload, "mpc")

    dealer_name = sole_peer(ctx, DEALER)
    request_label = [Label(f"randomness:{dealer_name}", Form.PUBLIC)]

    def ask(step: Step, message: dict[str, Any]) -> bytes:
        reply = ctx.deliver(dealer_name, step, request_label, json.dumps(message).encode(), "mpc")
        if reply is None:
            raise AirlockError("the dealer sent nothing")
        return reply.payload

    def request(message: dict[str, Any]) -> list[torch.Tensor]:
        meta, tensors = unpack_tensors(ask(Step.TUPLE_REQUEST, message))
        return [tensors[str(i)] for i in range(int(meta["count"]))]

    def check_tuples() -> None:
        through, transcript = dealer.PROVIDER.transcript()
        check = {"through": through, "transcript": transcript.hex()}
        ctx.deliver(dealer_name, Step.TUPLE_CHECK, request_label, json.dumps(check).encode(), "mpc")

    seed = bytes.fromhex(json.loads(ask(Step.SEED_REQUEST, {}))["seed"])
    dealer.use_dealer(request, seed, rank, len(ranks))
    if rank < len(ranks) - 1:
        state.check_tuples = check_tuples
    communicator.install(communicator.BoundaryCommunicator(rank, ranks, send, state.inbox))
    state.connected = True


def on_mpc_message(ctx: PartyContext, envelope: Envelope) -> None:
    ranks = compute_parties(ctx)
    state_of(ctx, ComputeState).inbox.put(ranks.index(envelope.header.sender), envelope.payload)


def on_prompt_shares(ctx: PartyContext, envelope: Envelope) -> Reply:
    state = state_of(ctx, ComputeState)
    state.expect(ComputePhase.READY, doing="a prompt share")
    request, tensors = unpack_tensors(envelope.payload)
    share = tensors.get("prompt")
    config = state.config
    if config is None:  # not once READY: the configuration comes with the weight shares
        raise AirlockError("no model configuration: no weight shares yet")
    if share is None or share.dim() != 2 or share.shape[1] != config.vocab:
        raise AirlockError(
            f"a prompt share is a (length, {config.vocab}) tensor, a column per token of the "
            "shared model"
        )
    if not 1 <= share.shape[0] <= config.context or share.dtype != torch.long:
        raise AirlockError(f"a prompt share has 1 to {config.context} int64 rows")
    with state.lock:
        connect(ctx, state)
        if state.weights is None:
            state.weights = {k: secret(v) for k, v in state.weight_shares.items()}
        logits = forward(secret(share), state.weights, config)
        result = logits.share
        if state.check_tuples is not None:  # before any share of the answer leaves
            state.check_tuples()
    user = envelope.header.sender
    meta = {}
    if Settings.model_validate(ctx.settings).log_receipts:
        meta = sign_and_log(ctx, user, request, state.model_root, result)
    label = (Label(f"output:{user}", Form.SHARE),)
    return Reply(Step.LOGIT_SHARES, label, pack_tensors(meta, {"logits": result}))


def on_seed_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    rank = compute_parties(ctx).index(envelope.header.sender)
    seed = state_of(ctx, DealerState).dealer.seed(rank)
    label = (Label(f"randomness:{ctx.name}", Form.SHARE),)
    return Reply(Step.SEED, label, json.dumps({"seed": seed.hex()}).encode())


def on_tuple_check(ctx: PartyContext, envelope: Envelope) -> None:
    check = json.loads(envelope.payload)
    rank = compute_parties(ctx).index(envelope.header.sender)
    transcript = bytes.fromhex(check["transcript"])
    state_of(ctx, DealerState).dealer.check(rank, check["through"], transcript)


def on_tuple_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    request = json.loads(envelope.payload)
    if not isinstance(request, dict):
        raise AirlockError("a tuple request is a JSON object")
    ranks = compute_parties(ctx)
    shares = state_of(ctx, DealerState).dealer.deal(ranks.index(envelope.header.sender), request)
    label = (Label(f"randomness:{ctx.name}", Form.SHARE),)
    body = {str(i): t for i, t in enumerate(shares)}
    return Reply(Step.TUPLE_SHARES, label, pack_tensors({"count": len(shares)}, body))
