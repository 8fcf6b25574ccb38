"""Secret randomness for the mpc protocol: AES-256-CTR keystreams keyed from
the operating system's CSPRNG.

Every secret ring element (the user's and the creator's shares, the dealer's
tuples, CrypTen's own masks and zero sharings) is drawn here, never from
torch's or numpy's generators: those are Mersenne Twisters, whose state a
party can rebuild from a few hundred outputs it sees and then predict every
later draw. A keystream with a fresh `os.urandom` key is unpredictable; one
whose key two parties share yields the same values on both, which CrypTen's
pseudo-random zero sharings need.

AES-CTR rather than `os.urandom` for every draw: as fast as torch's own
generator, and a shared key gives a shared stream.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable

import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

KEY_BYTES = 32  # AES-256
_PIECE = 1 << 16  # keystream bytes made at a time
_ZEROS = memoryview(bytes(_PIECE))  # what the keystream encrypts


def shape_of(size: int | Iterable[int]) -> tuple[int, ...]:
    return (int(size),) if isinstance(size, int) else tuple(int(s) for s in size)


class KeyStream:
    """Uniform int64 values (elements of the ring Z/2^64) from AES-256-CTR
    under `key`. Holders of the same key draw the same values in the same
    order."""

    def __init__(self, key: bytes, nonce: int = 0) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a keystream key is {KEY_BYTES} bytes")
        if not 0 <= nonce < 1 << 64:
            raise ValueError("a keystream nonce is 64 bits")
        # the nonce fills the counter block's upper half and the counter runs
        # in the lower: under one key, each nonce keys its own stream of up
        # to 2^64 blocks, none overlapping another
        counter = (nonce << 64).to_bytes(16, "big")
        self._encryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
        self._lock = threading.Lock()

    @classmethod
    def fresh(cls) -> KeyStream:
        """A stream under a new key from the OS CSPRNG, known to no one else."""
        return cls(os.urandom(KEY_BYTES))

    def ring_elements(self, size: int | Iterable[int]) -> torch.Tensor:
        """Uniform over all of int64: every bit of every value is random."""
        shape = shape_of(size)
        count = 1
        for dim in shape:
            count *= dim
        values = torch.empty(shape, dtype=torch.long)
        if count == 0:
            return values
        # the keystream is written into the tensor a piece at a time (4x the
        # speed of one `update` and a copy: no large buffer is allocated, so
        # no fresh pages are faulted in); CTR needs room for a block more
        out = values.numpy().data.cast("B")
        scratch = memoryview(bytearray(_PIECE + 15))
        with self._lock:
            for start in range(0, len(out), _PIECE):
                size = min(_PIECE, len(out) - start)
                self._encryptor.update_into(_ZEROS[:size], scratch)
                out[start : start + size] = scratch[:size]
        return values

    def bits(self, size: int | Iterable[int], bits: int) -> torch.Tensor:
        """Uniform over [0, 2^bits) for 1 <= bits <= 63; all of int64 for 64."""
        if not 1 <= bits <= 64:
            raise ValueError("1 to 64 random bits per value")
        values = self.ring_elements(size)
        return values if bits == 64 else values & ((1 << bits) - 1)


def random_ring_elements(size: int | Iterable[int]) -> torch.Tensor:
    """Fresh secret ring elements (under a new key: safe across forked processes)."""
    return KeyStream.fresh().ring_elements(size)
