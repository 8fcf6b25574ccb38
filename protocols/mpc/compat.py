"""Import CrypTen 0.4.1 on current torch, with its secret randomness drawn
from a CSPRNG.

CrypTen's ONNX converter imports `torch.onnx._internal.registration`, which
torch removed in 2.9, and `import crypten` fails with it. Airlock never
converts ONNX models (`crypten.nn.from_pytorch` does not work on current
torch; the model is built directly in `model.py`), so a stand-in module
whose registry refuses any use lets the import succeed.

CrypTen draws its masks and zero sharings from `torch.Generator`s (Mersenne
Twisters: predictable from their outputs) through two functions of
`crypten.common.rng`, which each drawing module binds by name at import.
Every such binding is redirected to AES-CTR keystreams (`randomness.py`),
and CrypTen's seed setup (`_setup_prng`) is replaced by an exchange of
256-bit keys for the same four generators. A torch generator handed to them
is refused, so no path can fall back to one.

Import CrypTen only through `crypten()` here.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import torch

from parties.errors import AirlockError
from protocols.mpc.randomness import KEY_BYTES, KeyStream

_REMOVED = "torch.onnx._internal.registration"
RING_SIZE = 2**64


class _NoOnnxRegistry:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("CrypTen's ONNX converter is not available on this torch")


def _stream(generator: Any, device: Any) -> KeyStream:
    if device is not None and torch.device(device).type != "cpu":
        raise AirlockError("Airlock runs CrypTen on the CPU")
    if generator is None:  # CrypTen's "local" randomness: known to this party alone
        return KeyStream.fresh()
    if not isinstance(generator, KeyStream):
        raise AirlockError("CrypTen asked for secret randomness from a torch generator")
    return generator


def ring_element(
    size: Any, ring_size: int = RING_SIZE, generator: Any = None, device: Any = None
) -> torch.Tensor:
    """`crypten.common.rng.generate_random_ring_element`, from a keystream."""
    if ring_size != RING_SIZE:
        raise AirlockError("CrypTen's ring is Z/2^64")
    return _stream(generator, device).ring_elements(size)


def kbit_tensor(
    size: Any, bitlength: int | None = None, generator: Any = None, device: Any = None
) -> torch.Tensor:
    """`crypten.common.rng.generate_kbit_random_tensor`, from a keystream."""
    return _stream(generator, device).bits(size, 64 if bitlength is None else bitlength)


def share_keys() -> None:
    """In place of CrypTen's `_setup_prng` (all ranks call it together):
    "next" is keyed with a key this rank sends to the next rank, "prev" with
    the one the previous rank sent, "global" with rank 0's, "local" with a
    key of its own."""
    module = sys.modules["crypten"]
    comm = module.communicator.get()
    rank, world = comm.get_rank(), comm.get_world_size()

    def as_tensor(key: bytes) -> torch.Tensor:
        return torch.tensor(list(key), dtype=torch.uint8)

    def as_key(tensor: torch.Tensor) -> bytes:
        if tensor.dtype != torch.uint8 or tensor.shape != (KEY_BYTES,):
            raise AirlockError(f"a keystream key is {KEY_BYTES} bytes")
        return bytes(tensor.tolist())

    next_key = prev_key = os.urandom(KEY_BYTES)
    if world >= 2:
        comm.send(as_tensor(next_key), (rank + 1) % world)
        prev_key = as_key(comm.recv(torch.empty(KEY_BYTES, dtype=torch.uint8), (rank - 1) % world))
    global_key = as_key(comm.broadcast(as_tensor(os.urandom(KEY_BYTES)), 0))
    local_key = os.urandom(KEY_BYTES)
    keys = {"prev": prev_key, "next": next_key, "local": local_key, "global": global_key}
    for name, key in keys.items():
        module.generators[name].clear()
        module.generators[name][torch.device("cpu")] = KeyStream(key)


def _draw_from_keystreams(module: Any) -> None:
    import crypten.common.rng as rng

    replacements = (
        (rng.generate_random_ring_element, ring_element),
        (rng.generate_kbit_random_tensor, kbit_tensor),
    )
    for name, loaded in list(sys.modules.items()):
        if name.split(".")[0] != "crypten" or loaded is None:
            continue
        for attribute, value in list(vars(loaded).items()):
            for original, replacement in replacements:
                if value is original:
                    setattr(loaded, attribute, replacement)
    module._setup_prng = share_keys


def crypten() -> Any:
    """The crypten module, imported with the compatibility stand-in in place
    and its randomness drawn from keystreams."""
    if _REMOVED not in sys.modules:
        try:
            __import__(_REMOVED)
        except ModuleNotFoundError:
            stand_in = types.ModuleType(_REMOVED)
            stand_in.registry = _NoOnnxRegistry()  # type: ignore[attr-defined]
            sys.modules[_REMOVED] = stand_in
    import crypten as module

    if module._setup_prng is not share_keys:
        _draw_from_keystreams(module)
    return module
