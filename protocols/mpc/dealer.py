"""Correlated randomness from a dealer party, reached through the boundary.

CrypTen's own trusted-third-party provider talks to its TTP over
torch.distributed. `DealerProvider` is a tuple provider of our own instead,
with the TTP's division of work: the dealer gives each compute rank a seed
once (`seed_request`), and each rank draws its shares of a tuple's random
inputs from a keystream under its seed, one stream per tuple
(`tuple_stream`); every rank but the last draws its share of the derived
value (a product, a square, a wrap count, a B2A value) there too. Only the
last rank asks the dealer (`tuple_request`): the dealer draws every rank's
shares from the same seeds, works out the derived value and sends the last
rank its share of it, the correction. Dealing every share to both ranks
took about twice the bytes of all of CrypTen's own messages a token; the
corrections are a fraction of that, and rank 0 asks the dealer nothing for a
tuple (it has the dealer check its requests once a forward pass).
The ranks number their tuples alike because CrypTen's control flow is the
same on every rank.

A tuple's streams are keyed by the seed and by everything its request
names (`tuple_key`: id, count, kind, op, sizes), as each rank sees it. Only
the last rank tells the dealer what it wants, so without that binding it
could ask for tuple N as another kind or shape than rank 0 uses (an empty
product, a B2A pair over a triple's words) and get back rank 0's stream
words as the correction: rank 0's Beaver masks, and with the openings the
prompt and the weights. Bound, a request rank 0 did not make draws rank 0's
words from a stream rank 0 never uses: the correction is independent of
rank 0's shares, and the deviating rank gets a wrong tuple, no secret.

The dealer sees only sizes, never a share of the data. Its seeds come from
`os.urandom`, one per rank, each told to its rank once: a rank can predict
its own shares only, and the others' stay unpredictable to it
(`randomness.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import rfc8785
import torch

from parties.errors import AirlockError
from protocols.mpc.compat import crypten
from protocols.mpc.randomness import KEY_BYTES, KeyStream

_crypten = crypten()
from crypten.common.util import count_wraps  # noqa: E402
from crypten.config import cfg  # noqa: E402
from crypten.mpc.primitives import ArithmeticSharedTensor, BinarySharedTensor  # noqa: E402
from crypten.mpc.provider.provider import TupleProvider  # noqa: E402

NAME = "AIRLOCK_DEALER"
KINDS = ("additive", "square", "binary", "wraps", "B2A")
MAX_BULK = 16
# Elements one request may make the dealer draw: inputs and product over
# all its tuples and ranks' streams. What a rank can make the dealer spend.
MAX_REQUEST_ELEMENTS = 1 << 24
BULK = 8  # tuples of one kind and size asked for at once: CrypTen asks for many alike
OPS = ("mul", "matmul", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")

# (the request, with its id and count) -> the last rank's corrections
Request = Callable[[dict[str, Any]], list[torch.Tensor]]


def tuple_key(request: Mapping[str, Any]) -> bytes:
    """Everything a tuple request names, as canonical JSON: what keys its streams."""
    sizes = _sizes(request)
    try:
        named: dict[str, Any] = {"id": int(request["id"]), "count": int(request.get("count", 1))}
    except (KeyError, TypeError, ValueError):
        raise AirlockError("a tuple request needs an integer id and count") from None
    named |= {"kind": str(request.get("kind")), "size0": sizes[0], "size1": sizes[1]}
    if named["kind"] == "additive":
        named |= {"op": str(request.get("op")), "kwargs": dict(request.get("kwargs") or {})}
    return rfc8785.dumps(named)


NO_TUPLES = bytes(32)  # the transcript before any request


def extend_transcript(transcript: bytes, key: bytes) -> bytes:
    """A running hash over the tuple requests made so far (their `tuple_key`s)."""
    return hashlib.sha256(transcript + hashlib.sha256(key).digest()).digest()


def tuple_stream(seed: bytes, request: Mapping[str, Any], index: int) -> KeyStream:
    """A rank's stream for tuple `index` of `request`: keyed by the rank's
    seed and all that the request names, so the dealer and the rank draw
    alike only for the very request the rank itself makes."""
    return KeyStream(hmac.digest(seed, tuple_key(request), hashlib.sha256), nonce=index)


def _inputs(kind: str, sizes: list[list[int]], stream: KeyStream) -> list[torch.Tensor]:
    """A rank's shares of the tuple's random inputs, drawn first from its stream."""
    ring = stream.ring_elements
    if kind == "additive":
        return [ring(sizes[0]), ring(sizes[1])]
    if kind == "binary":  # shared in the shape of a & b, which broadcasts them
        return [t.contiguous() for t in torch.broadcast_tensors(ring(sizes[0]), ring(sizes[1]))]
    if kind in ("square", "wraps"):
        return [ring(sizes[0])]
    if kind == "B2A":
        return [stream.bits(sizes[0], 1)]
    raise AirlockError(f"unknown tuple kind {kind!r}")


def _derived(
    request: dict[str, Any], inputs: list[list[torch.Tensor]]
) -> tuple[torch.Tensor, bool]:
    """The value derived from the inputs of every rank (its shares `inputs`),
    and whether it is shared by XOR (binary) rather than by sum."""
    kind = request.get("kind")
    if kind == "additive":
        a, b = (torch.stack([shares[i] for shares in inputs]).sum(0) for i in (0, 1))
        return getattr(torch, request["op"])(a, b, **dict(request.get("kwargs") or {})), False
    if kind == "square":
        r = torch.stack([shares[0] for shares in inputs]).sum(0)
        return r * r, False
    if kind == "wraps":
        return count_wraps([shares[0] for shares in inputs]), False
    a = inputs[0][0].clone()
    for shares in inputs[1:]:
        a ^= shares[0]
    if kind == "B2A":  # the bit, shared by sum
        return a, False
    b = inputs[0][1].clone()
    for shares in inputs[1:]:
        b ^= shares[1]
    return a & b, True


def own_tuple(
    request: dict[str, Any], stream: KeyStream, correction: torch.Tensor | None
) -> list[torch.Tensor]:
    """A rank's shares of one tuple, in the order CrypTen takes them: its
    inputs from its stream, then its share of the derived value, drawn there
    too or, for the last rank, the dealer's correction."""
    kind = str(request.get("kind"))
    inputs = _inputs(kind, _sizes(request), stream)
    shape = derived_shape(request)
    if correction is None:
        derived = stream.ring_elements(shape)
    elif correction.shape != shape or correction.dtype != torch.long:
        raise AirlockError(
            f"a {kind} correction of shape {list(correction.shape)}, not {list(shape)}"
        )
    else:
        derived = correction
    return [derived, *inputs] if kind == "B2A" else [*inputs, derived]


class Dealer:
    """The dealer's side: a seed per rank, and the last rank's corrections."""

    def __init__(self, world_size: int = 2) -> None:
        self.world_size = world_size
        self._seeds = [os.urandom(KEY_BYTES) for _ in range(world_size)]
        self._seeded: set[int] = set()
        self._last_id = 0
        self._transcript = NO_TUPLES  # over every tuple the last rank asked for
        self._diverged = False  # once the ranks' tuples differ, nothing more is dealt
        self._lock = threading.Lock()
        # the first shape worked out on meta tensors imports torch's meta
        # registrations (0.4 s here, seconds on a busy machine): paid as the
        # dealer starts, not by the first token's first tuple
        derived_shape({"kind": "additive", "op": "matmul", "size0": [1, 1], "size1": [1, 1]})

    def _check_rank(self, rank: int) -> None:
        if not 0 <= rank < self.world_size:
            raise AirlockError(f"rank {rank} is not a compute party")

    def seed(self, rank: int) -> bytes:
        """The rank's seed, told once."""
        self._check_rank(rank)
        with self._lock:
            if rank in self._seeded:
                raise AirlockError(f"rank {rank} has its seed already")
            self._seeded.add(rank)
        return self._seeds[rank]

    def deal(self, rank: int, request: dict[str, Any]) -> list[torch.Tensor]:
        """The last rank's corrections for the `count` tuples of `request`."""
        self._check_rank(rank)
        if rank != self.world_size - 1:
            raise AirlockError(f"rank {rank} draws its tuples from its seed: only the last asks")
        try:
            ident = int(request["id"])
        except (KeyError, TypeError, ValueError):
            raise AirlockError("a tuple request needs an integer id") from None
        count = request.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= MAX_BULK:
            raise AirlockError(f"a tuple request asks for 1 to {MAX_BULK} tuples")
        if count * self.world_size * _elements(request) > MAX_REQUEST_ELEMENTS:
            raise AirlockError(
                f"tuple request of a bad size: over {MAX_REQUEST_ELEMENTS} elements"
                " with the product"
            )
        key = tuple_key(request)
        with self._lock:
            if self._diverged:
                raise AirlockError("no more tuples: the ranks asked for different ones")
            # in order, each once: a correction dealt again would be the same
            if ident <= self._last_id:
                raise AirlockError(f"tuple {ident} comes after {self._last_id}: ids only increase")
            self._last_id = ident
            self._transcript = extend_transcript(self._transcript, key)
        return [self._correction(request, index) for index in range(count)]

    def check(self, rank: int, through: int, transcript: bytes) -> None:
        """Refuse unless the last rank asked for exactly the tuples rank
        `rank` used, through tuple `through` (its transcript of them). A
        rank that asked for others got nothing of the other's (tuple_stream),
        but the tuples no longer add up: the answer would be wrong."""
        self._check_rank(rank)
        if rank == self.world_size - 1:
            raise AirlockError("the last rank's requests are what the others are checked against")
        with self._lock:
            if (through, transcript) != (self._last_id, self._transcript):
                self._diverged = True
                raise AirlockError(
                    f"the last rank asked for other tuples than rank {rank} used through "
                    f"tuple {through}: its answers are refused"
                )

    def _correction(self, request: dict[str, Any], index: int) -> torch.Tensor:
        streams = [tuple_stream(seed, request, index) for seed in self._seeds]
        sizes = _sizes(request)
        inputs = [_inputs(str(request.get("kind")), sizes, stream) for stream in streams]
        value, binary = _derived(request, inputs)
        for stream in streams[:-1]:  # the other ranks' shares of it, as they draw them
            share = stream.ring_elements(value.shape)
            value = value ^ share if binary else value - share
        return value


def _sizes(request: Mapping[str, Any]) -> list[list[int]]:
    try:
        sizes = [list(map(int, request.get(k) or [])) for k in ("size0", "size1")]
    except (TypeError, ValueError):
        raise AirlockError("tuple request of a bad size: sizes are lists of integers") from None
    if any(s < 0 for size in sizes for s in size) or any(len(size) > 8 for size in sizes):
        raise AirlockError("tuple request of a bad size")
    # an empty dimension draws no inputs: the derived value's share would be
    # the whole correction (refused, though a bound stream would make it harmless)
    if any(s == 0 for size in sizes for s in size):
        raise AirlockError("tuple request of a bad size: an empty dimension")
    return sizes


def derived_shape(request: dict[str, Any]) -> torch.Size:
    """The shape of the tuple's derived value, from meta tensors (no memory, no work)."""
    sizes = _sizes(request)
    kind = request.get("kind")
    if kind not in KINDS:
        raise AirlockError(f"unknown tuple kind {kind!r}")
    try:
        if kind == "binary":
            return torch.broadcast_shapes(*sizes)
        if kind != "additive":
            return torch.Size(sizes[0])
        if request.get("op") not in OPS:
            raise AirlockError(f"tuple op {request.get('op')!r} is not supported")
        a, b = (torch.empty(size, dtype=torch.long, device="meta") for size in sizes)
        kwargs = dict(request.get("kwargs") or {})
        return getattr(torch, request["op"])(a, b, **kwargs).shape
    except (TypeError, ValueError, RuntimeError) as error:
        raise AirlockError(f"tuple request of a bad size: {error}") from None


def _elements(request: dict[str, Any]) -> int:
    """Elements one rank's stream of one tuple of `request` draws: its
    inputs (both shaped as the product, for a binary one) and the derived value."""
    sizes = _sizes(request)
    derived = math.prod(derived_shape(request))
    if request.get("kind") == "binary":
        return 3 * derived
    return sum(math.prod(size) for size in sizes) + derived


class DealerProvider(TupleProvider):  # type: ignore[misc]
    """The compute parties' side: each rank draws its tuples from its seed;
    the last rank asks the dealer for its corrections."""

    NAME = NAME

    def __init__(self) -> None:
        super().__init__()
        self.request: Request | None = None
        self._seed = b""
        self._last = False
        self._counter = 0
        self._transcript = NO_TUPLES
        self._spare: dict[str, list[list[torch.Tensor]]] = {}

    def reset(self, request: Request, seed: bytes, rank: int, world_size: int) -> None:
        self.request, self._seed, self._last = request, seed, rank == world_size - 1
        self._counter, self._transcript, self._spare = 0, NO_TUPLES, {}

    def transcript(self) -> tuple[int, bytes]:
        """The last tuple id asked for, and the running hash of every request
        through it, as the dealer keeps them for the last rank's (Dealer.check)."""
        return self._counter, self._transcript

    def _ask(self, kind: str, size0: Any, size1: Any = (), **extra: Any) -> list[torch.Tensor]:
        """One tuple. Tuples of one kind and size come from the dealer BULK at
        a time; both ranks ask in the same order, so their spares match."""
        if self.request is None:
            raise AirlockError("no dealer connected")
        message = {"kind": kind, "size0": list(size0), "size1": list(size1), **extra}
        key = json.dumps(message, sort_keys=True)
        spare = self._spare.get(key)
        if spare:
            return spare.pop(0)
        self._counter += 1
        request = {**message, "id": self._counter, "count": BULK}
        self._transcript = extend_transcript(self._transcript, tuple_key(request))
        corrections: list[torch.Tensor | None] = [None] * BULK
        if self._last:
            corrections = list(self.request(request))
            if len(corrections) != BULK:
                raise AirlockError(f"the dealer sent {len(corrections)} corrections, not {BULK}")
        tuples = [
            own_tuple(request, tuple_stream(self._seed, request, index), correction)
            for index, correction in enumerate(corrections)
        ]
        self._spare[key] = tuples[1:]
        return tuples[0]

    def generate_additive_triple(self, size0, size1, op, device=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if args:
            raise AirlockError("positional arguments to a triple op are not supported")
        a, b, c = self._ask("additive", size0, size1, op=op, kwargs=kwargs)
        return tuple(ArithmeticSharedTensor.from_shares(x, precision=0) for x in (a, b, c))

    def square(self, size, device=None):  # type: ignore[no-untyped-def]
        r, r2 = self._ask("square", size)
        return (
            ArithmeticSharedTensor.from_shares(r, precision=0),
            ArithmeticSharedTensor.from_shares(r2, precision=0),
        )

    def generate_binary_triple(self, size0, size1, device=None):  # type: ignore[no-untyped-def]
        a, b, c = self._ask("binary", size0, size1)
        return tuple(BinarySharedTensor.from_shares(x) for x in (a, b, c))

    def wrap_rng(self, size, device=None):  # type: ignore[no-untyped-def]
        r, theta = self._ask("wraps", size)
        return (
            ArithmeticSharedTensor.from_shares(r, precision=0),
            ArithmeticSharedTensor.from_shares(theta, precision=0),
        )

    def B2A_rng(self, size, device=None):  # type: ignore[no-untyped-def]
        r_arithmetic, r_binary = self._ask("B2A", size)
        return (
            ArithmeticSharedTensor.from_shares(r_arithmetic, precision=0),
            BinarySharedTensor.from_shares(r_binary),
        )


PROVIDER = DealerProvider()


def use_dealer(request: Request, seed: bytes, rank: int, world_size: int) -> None:
    """Make CrypTen take its tuples from the dealer's `seed` for this rank
    and, for the last rank, the corrections `request` asks for."""
    vars(_crypten.mpc)["__SUPPORTED_PROVIDERS"][NAME] = PROVIDER
    cfg.mpc.provider = NAME
    PROVIDER.reset(request, seed, rank, world_size)
