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
256-bit keys for the same four generators. Only CrypTen's own TTP provider,
which the protocol replaces with its dealer, still draws from the torch
generators it seeds itself.

Import CrypTen only through `crypten()` here.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable
from typing import Any

import torch

from parties.errors import AirlockError
from protocols.mpc.randomness import KEY_BYTES, KeyStream

_REMOVED = "torch.onnx._internal.registration"
RING_SIZE = 2**64


class _NoOnnxRegistry:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("CrypTen's ONNX converter is not available on this torch")


# CrypTen's own draws, kept for torch generators: only CrypTen's TTP provider
# hands it those, and only the benchmark's CrypTen baseline runs it (the
# protocol takes its tuples from the dealer party instead).
_CRYPTEN_DRAWS: dict[str, Callable[..., torch.Tensor]] = {}


def _stream(generator: KeyStream | None, device: Any) -> KeyStream:
    if device is not None and torch.device(device).type != "cpu":
        raise AirlockError("Airlock runs CrypTen on the CPU")
    if generator is None:  # CrypTen's "local" randomness: known to this party alone
        return KeyStream.fresh()
    if not isinstance(generator, KeyStream):
        raise AirlockError(f"CrypTen asked for secret randomness from a {type(generator)}")
    return generator


def ring_element(
    size: Any, ring_size: int = RING_SIZE, generator: Any = None, device: Any = None
) -> torch.Tensor:
    """`crypten.common.rng.generate_random_ring_element`, from a keystream."""
    if isinstance(generator, torch.Generator):
        return _CRYPTEN_DRAWS["ring_element"](size, ring_size, generator, device=device)
    if ring_size != RING_SIZE:
        raise AirlockError("CrypTen's ring is Z/2^64")
    return _stream(generator, device).ring_elements(size)


def kbit_tensor(
    size: Any, bitlength: int | None = None, generator: Any = None, device: Any = None
) -> torch.Tensor:
    """`crypten.common.rng.generate_kbit_random_tensor`, from a keystream."""
    if isinstance(generator, torch.Generator):
        return _CRYPTEN_DRAWS["kbit_tensor"](size, bitlength, generator, device=device)
    return _stream(generator, device).bits(size, 64 if bitlength is None else bitlength)


def exchange_keys(comm: Any) -> dict[str, bytes]:
    """The keys of CrypTen's four generators, for this rank (all ranks call
    this together): "next" a key this rank sends to the next rank, "prev"
    the one the previous rank sent, "global" rank 0's, "local" its own."""
    rank, world = comm.get_rank(), comm.get_world_size()
    next_key = os.urandom(KEY_BYTES)
    received = torch.tensor(list(next_key), dtype=torch.uint8)  # world 1: its own
    if world >= 2:  # as CrypTen's own seed exchange: both sides post, then wait
        sending = comm.isend(torch.tensor(list(next_key), dtype=torch.uint8), (rank + 1) % world)
        receiving = comm.irecv(received, src=(rank - 1) % world)
        sending.wait()
        receiving.wait()
    global_key = comm.broadcast(torch.tensor(list(os.urandom(KEY_BYTES)), dtype=torch.uint8), 0)
    return {
        "prev": bytes(received.tolist()),
        "next": next_key,
        "local": os.urandom(KEY_BYTES),
        "global": bytes(global_key.tolist()),
    }


def share_keys() -> None:
    """In place of CrypTen's `_setup_prng`: its generators become keystreams
    under exchanged keys."""
    module = sys.modules["crypten"]
    for name, key in exchange_keys(module.communicator.get()).items():
        module.generators[name].clear()
        module.generators[name][torch.device("cpu")] = KeyStream(key)


def _draw_from_keystreams(module: Any) -> None:
    import crypten.common.rng as rng

    _CRYPTEN_DRAWS["ring_element"] = rng.generate_random_ring_element
    _CRYPTEN_DRAWS["kbit_tensor"] = rng.generate_kbit_random_tensor
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
