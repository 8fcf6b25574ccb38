"""CrypTen's communicator, with every message an envelope through the party
boundary: no torch.distributed sockets between parties.

CrypTen has no plug-in point for a communicator. `install()` replaces
`crypten.communicator.get` and `is_initialized` with functions returning
ours, then runs CrypTen's generator setup over it: an exchange of AES-CTR
keys between the ranks (compat.py), itself sent as envelopes. Because the
communicator is per process, each compute party must run in its own process
(a Ray actor).

Tensors travel as safetensors, never pickled. Messages from each peer
queue in arrival order. Each collective is built from sends and receives
between the ranks, so every operation consumes its peer's messages in the
order they were sent, and a message of the wrong kind is a protocol error.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from parties.errors import AirlockError
from parties.payload import pack, unpack
from protocols.mpc.compat import crypten

Send = Callable[[str, bytes], None]  # (peer name, payload): one envelope, delivered
RECV_TIMEOUT = 20.0  # a peer silent this long has failed: end the inference


def pack_tensors(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> bytes:
    """A JSON header, then named tensors as safetensors."""
    return pack(meta, save_tensors({k: v.contiguous() for k, v in tensors.items()}))


def unpack_tensors(payload: bytes) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    meta, body = unpack(payload)
    try:
        return meta, dict(load_tensors(body)) if body else {}
    except Exception:
        raise AirlockError("the payload holds no tensors") from None


def encode_tensors(kind: str, tensors: list[torch.Tensor]) -> bytes:
    """One CrypTen message: its kind and its tensors, in order."""
    named = {str(i): t for i, t in enumerate(tensors)}
    return pack_tensors({"kind": kind, "count": len(tensors)}, named)


def decode_tensors(payload: bytes) -> tuple[str, list[torch.Tensor]]:
    meta, tensors = unpack_tensors(payload)
    try:
        return str(meta["kind"]), [tensors[str(i)] for i in range(int(meta["count"]))]
    except (KeyError, TypeError, ValueError):
        raise AirlockError("an MPC message that is not a tensor list") from None


class Inbox:
    """Messages from each peer rank, in arrival order."""

    def __init__(self) -> None:
        self._queues: dict[int, queue.Queue[tuple[str, list[torch.Tensor]]]] = {}
        self._lock = threading.Lock()

    def _queue(self, rank: int) -> queue.Queue[tuple[str, list[torch.Tensor]]]:
        with self._lock:
            return self._queues.setdefault(rank, queue.Queue())

    def put(self, rank: int, payload: bytes) -> None:
        self._queue(rank).put(decode_tensors(payload))

    def take(self, rank: int, kind: str) -> list[torch.Tensor]:
        try:
            got, tensors = self._queue(rank).get(timeout=RECV_TIMEOUT)
        except queue.Empty:
            raise AirlockError(f"no MPC message from rank {rank} in {RECV_TIMEOUT:.0f} s") from None
        if got != kind:
            raise AirlockError(f"MPC protocol out of step: expected {kind}, got {got}")
        return tensors


class _Done:
    def is_completed(self) -> bool:
        return True

    def wait(self) -> None:
        pass


class BoundaryCommunicator(crypten().communicator.Communicator):  # type: ignore[misc]
    """Two or more ranks; rank i is the party `ranks[i]`."""

    def __init__(self, rank: int, ranks: list[str], send: Send, inbox: Inbox) -> None:
        self.rank = rank
        self.ranks = ranks
        self._send_payload = send
        self.inbox = inbox
        self._name = ranks[rank]
        self.reset_communication_stats()
        self.messages = 0

    # -- point to point ---------------------------------------------------------

    def _send(self, dst: int, kind: str, tensors: list[torch.Tensor]) -> None:
        payload = encode_tensors(kind, tensors)
        self.messages += 1
        self.comm_bytes += len(payload)
        self._send_payload(self.ranks[dst], payload)

    def _recv(self, src: int, kind: str) -> list[torch.Tensor]:
        return self.inbox.take(src, kind)

    def _others(self) -> list[int]:
        return [r for r in range(len(self.ranks)) if r != self.rank]

    def send(self, tensor: torch.Tensor, dst: int) -> None:
        self._send(dst, "send", [tensor])

    def recv(self, tensor: torch.Tensor, src: int | None = None) -> torch.Tensor:
        if src is None:
            raise AirlockError("receiving from any source is not supported")
        return self._recv(src, "send")[0]

    def isend(self, tensor: torch.Tensor, dst: int) -> _Done:
        self.send(tensor, dst)
        return _Done()

    def irecv(self, tensor: torch.Tensor, src: int | None = None) -> Any:
        communicator = self

        class Pending:
            def is_completed(self) -> bool:
                return False

            def wait(self) -> None:
                tensor.copy_(communicator.recv(tensor, src))

        return Pending()

    # -- collectives --------------------------------------------------------------

    def _exchange(self, kind: str, tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Everyone's tensors, by rank (each sends to every other, then receives)."""
        for other in self._others():
            self._send(other, kind, tensors)
        return [tensors if r == self.rank else self._recv(r, kind) for r in range(len(self.ranks))]

    @staticmethod
    def _combine(parts: list[torch.Tensor], op: Any) -> torch.Tensor:
        result = parts[0].clone()
        for part in parts[1:]:
            if op == torch.distributed.ReduceOp.BXOR:
                result = result ^ part
            elif op == torch.distributed.ReduceOp.SUM:
                result = result + part
            else:
                raise AirlockError(f"reduce op {op} is not supported")
        return result

    def all_reduce(self, input: Any, op: Any = None, batched: bool = False) -> Any:
        op = torch.distributed.ReduceOp.SUM if op is None else op
        tensors = list(input) if batched else [input]
        by_rank = self._exchange("all_reduce", tensors)
        reduced = [self._combine([r[i] for r in by_rank], op) for i in range(len(tensors))]
        return reduced if batched else reduced[0]

    def reduce(self, input: Any, dst: int, op: Any = None, batched: bool = False) -> Any:
        op = torch.distributed.ReduceOp.SUM if op is None else op
        tensors = list(input) if batched else [input]
        if self.rank != dst:
            self._send(dst, "reduce", tensors)
            return None
        by_rank = [tensors if r == dst else self._recv(r, "reduce") for r in range(len(self.ranks))]
        reduced = [self._combine([r[i] for r in by_rank], op) for i in range(len(tensors))]
        return reduced if batched else reduced[0]

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        return [parts[0] for parts in self._exchange("all_gather", [tensor])]

    def gather(self, tensor: torch.Tensor, dst: int) -> list[Any]:
        if self.rank != dst:
            self._send(dst, "gather", [tensor])
            return [None]
        return [tensor if r == dst else self._recv(r, "gather")[0] for r in range(len(self.ranks))]

    def broadcast(self, input: Any, src: int, group: Any = None, batched: bool = False) -> Any:
        tensors = list(input) if batched else [input]
        if self.rank == src:
            for other in self._others():
                self._send(other, "broadcast", tensors)
            result = tensors
        else:
            result = self._recv(src, "broadcast")
        return result if batched else result[0]

    def scatter(self, scatter_list: list[torch.Tensor], src: int, size: Any = None) -> Any:
        if self.rank == src:
            for other in self._others():
                self._send(other, "scatter", [scatter_list[other]])
            return scatter_list[src]
        return self._recv(src, "scatter")[0]

    def barrier(self) -> None:
        self._exchange("barrier", [torch.zeros(1)])

    # -- small objects (JSON, never pickle) ------------------------------------------

    def send_obj(self, obj: Any, dst: int, group: Any = None) -> None:
        self._send(dst, "object", [torch.tensor(list(json.dumps(obj).encode()), dtype=torch.uint8)])

    def recv_obj(self, src: int, group: Any = None) -> Any:
        return json.loads(bytes(self._recv(src, "object")[0].tolist()))

    def broadcast_obj(self, obj: Any, src: int, group: Any = None) -> Any:
        if self.rank == src:
            for other in self._others():
                self.send_obj(obj, other)
            return obj
        return self.recv_obj(src)

    # -- identity -----------------------------------------------------------------------

    def get_world_size(self) -> int:
        return len(self.ranks)

    def get_rank(self) -> int:
        return self.rank

    def set_name(self, name: str) -> None:
        self._name = name

    def get_name(self) -> str:
        return self._name


_installed: BoundaryCommunicator | None = None


def install(communicator: BoundaryCommunicator) -> None:
    """Make `communicator` CrypTen's, for this process, and exchange the keys
    of CrypTen's generators over it (all ranks must call this together)."""
    global _installed
    module = crypten()
    _installed = communicator
    module.communicator.get = lambda: _installed
    module.communicator.is_initialized = lambda: _installed is not None
    module._setup_prng()


def installed() -> BoundaryCommunicator | None:
    return _installed
