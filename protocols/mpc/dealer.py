"""Correlated randomness from a dealer party, reached through the boundary.

CrypTen's own trusted-third-party provider talks to its TTP over
torch.distributed. `DealerProvider` is a tuple provider of our own instead:
each compute party asks the dealer for its share of each Beaver triple,
square, binary triple, wrap or B2A pair. The dealer answers both ranks from
one draw: the first request with a given id draws and splits, the second
takes the other share. The ranks ask in the same order, because CrypTen's
control flow is the same on every rank.

The dealer sees only sizes, never a share of the data. It draws every
tuple from an AES-CTR keystream under a key of its own (`randomness.py`):
a rank that sees its shares cannot predict the next tuple.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

import torch

from parties.errors import AirlockError
from protocols.mpc.compat import crypten
from protocols.mpc.randomness import KeyStream

_crypten = crypten()
from crypten.common.util import count_wraps  # noqa: E402
from crypten.config import cfg  # noqa: E402
from crypten.mpc.primitives import ArithmeticSharedTensor, BinarySharedTensor  # noqa: E402
from crypten.mpc.provider.provider import TupleProvider  # noqa: E402

NAME = "AIRLOCK_DEALER"
KINDS = ("additive", "square", "binary", "wraps", "B2A")
MAX_BULK = 16
# Elements one request may make the dealer draw and hold: inputs and product
# over all its tuples. The reply carries the same amount back, so this is
# also what a rank can make the dealer spend per request.
MAX_REQUEST_ELEMENTS = 1 << 24
# Tuples drawn for one rank and not yet taken by the other: a rank that asks
# far ahead of its peer is refused rather than filling the dealer's memory.
MAX_PENDING = 64
BULK = 8  # tuples of one kind and size asked for at once: CrypTen asks for many alike
OPS = ("mul", "matmul", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d")

Request = Callable[[dict[str, Any]], list[torch.Tensor]]


class Dealer:
    """The dealer's side: draws, splits, and hands each rank its share."""

    def __init__(self, world_size: int = 2) -> None:
        self.world_size = world_size
        self._stream = KeyStream.fresh()
        self._pending: dict[int, tuple[list[list[torch.Tensor]], set[int]]] = {}
        self._lock = threading.Lock()
        self.dealt = 0

    def _split(self, value: torch.Tensor, binary: bool = False) -> list[torch.Tensor]:
        shares = [self._stream.ring_elements(value.shape) for _ in range(self.world_size - 1)]
        last = value.clone()
        for share in shares:
            last = last ^ share if binary else last - share
        return [*shares, last]

    def _draw(self, request: dict[str, Any]) -> list[list[torch.Tensor]]:
        """Per rank, its shares of `count` fresh tuples of the requested kind,
        one after the other."""
        count = request.get("count", 1)
        if not isinstance(count, int) or not 1 <= count <= MAX_BULK:
            raise AirlockError(f"a tuple request asks for 1 to {MAX_BULK} tuples")
        if count * _elements(request) > MAX_REQUEST_ELEMENTS:
            raise AirlockError(
                f"tuple request of a bad size: over {MAX_REQUEST_ELEMENTS} elements"
                " with the product"
            )
        draws = [self._draw_one(request) for _ in range(count)]
        return [[t for draw in draws for t in draw[rank]] for rank in range(self.world_size)]

    def _draw_one(self, request: dict[str, Any]) -> list[list[torch.Tensor]]:
        kind = request.get("kind")
        sizes = _sizes(request)
        ring = self._stream.ring_elements
        if kind == "additive":
            op = request.get("op")
            if op not in OPS:
                raise AirlockError(f"tuple op {op!r} is not supported")
            a, b = ring(sizes[0]), ring(sizes[1])
            c = getattr(torch, op)(a, b, **dict(request.get("kwargs") or {}))
            parts = [self._split(a), self._split(b), self._split(c)]
        elif kind == "square":
            r = ring(sizes[0])
            parts = [self._split(r), self._split(r * r)]
        elif kind == "binary":
            a, b = ring(sizes[0]), ring(sizes[1])
            a, b = torch.broadcast_tensors(a, b)
            parts = [self._split(a, True), self._split(b, True), self._split(a & b, True)]
        elif kind == "wraps":
            r_shares = [ring(sizes[0]) for _ in range(self.world_size)]
            parts = [r_shares, self._split(count_wraps(r_shares))]
        elif kind == "B2A":
            bits = [self._stream.bits(sizes[0], 1) for _ in range(self.world_size)]
            value = bits[0]
            for bit in bits[1:]:
                value = value ^ bit
            parts = [self._split(value), bits]
        else:
            raise AirlockError(f"unknown tuple kind {kind!r}")
        return [[part[rank] for part in parts] for rank in range(self.world_size)]

    def deal(self, rank: int, request: dict[str, Any]) -> list[torch.Tensor]:
        if not 0 <= rank < self.world_size:
            raise AirlockError(f"rank {rank} is not a compute party")
        try:
            ident = int(request["id"])
        except (KeyError, TypeError, ValueError):
            raise AirlockError("a tuple request needs an integer id") from None
        with self._lock:
            if ident not in self._pending:
                if len(self._pending) >= MAX_PENDING:
                    raise AirlockError(
                        f"{MAX_PENDING} tuples are waiting for the other rank: asked too far ahead"
                    )
                self._pending[ident] = (self._draw(request), set())
                self.dealt += 1
            shares, taken = self._pending[ident]
            if rank in taken:
                raise AirlockError(f"tuple {ident} was already dealt to rank {rank}")
            taken.add(rank)
            if len(taken) == self.world_size:
                del self._pending[ident]
        return shares[rank]


def _sizes(request: dict[str, Any]) -> list[list[int]]:
    try:
        sizes = [list(map(int, request.get(k) or [])) for k in ("size0", "size1")]
    except (TypeError, ValueError):
        raise AirlockError("tuple request of a bad size: sizes are lists of integers") from None
    if any(s < 0 for size in sizes for s in size) or any(len(size) > 8 for size in sizes):
        raise AirlockError("tuple request of a bad size")
    return sizes


def _elements(request: dict[str, Any]) -> int:
    """Elements one tuple of `request` takes: its inputs and what is computed
    from them, whose shape comes from meta tensors (no memory, no work)."""
    sizes = _sizes(request)
    inputs = sum(math.prod(size) for size in sizes)
    try:
        if request.get("kind") == "binary":
            return inputs + 3 * math.prod(torch.broadcast_shapes(*sizes))
        if request.get("kind") != "additive" or request.get("op") not in OPS:
            return inputs
        a, b = (torch.empty(size, dtype=torch.long, device="meta") for size in sizes)
        kwargs = dict(request.get("kwargs") or {})
        return inputs + getattr(torch, request["op"])(a, b, **kwargs).numel()
    except (TypeError, ValueError, RuntimeError) as error:
        raise AirlockError(f"tuple request of a bad size: {error}") from None


class DealerProvider(TupleProvider):  # type: ignore[misc]
    """The compute parties' side: each tuple is one request to the dealer."""

    NAME = NAME

    def __init__(self) -> None:
        super().__init__()
        self.request: Request | None = None
        self._counter = 0
        self._spare: dict[str, list[list[torch.Tensor]]] = {}
        self.requests = 0

    def reset(self, request: Request) -> None:
        self.request, self._counter, self._spare = request, 0, {}

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
        self.requests += 1
        shares = self.request({**message, "id": self._counter, "count": BULK})
        per_tuple = len(shares) // BULK
        tuples = [shares[i * per_tuple : (i + 1) * per_tuple] for i in range(BULK)]
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


def use_dealer(request: Request) -> None:
    """Make CrypTen take its tuples from the dealer, through `request`."""
    vars(_crypten.mpc)["__SUPPORTED_PROVIDERS"][NAME] = PROVIDER
    cfg.mpc.provider = NAME
    PROVIDER.reset(request)
