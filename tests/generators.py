"""Whether secret randomness comes from the operating system's CSPRNG, told
by behaviour rather than by reading the source (a scan of names misses
`getattr(torch, "randint")`, a generator built in a helper, a draw in
another module). A `draw` returns the values a protocol draws as secrets;
`assert_drawn_from_the_os` runs it four times:

- with torch's, numpy's and `random`'s global generators seeded alike, the
  draws must differ: a draw from any of them, or from a generator of a
  fixed seed, repeats;
- with `os.urandom` (and `secrets.token_bytes`) replaying the same bytes and
  those generators seeded differently, the draws must be the same: a draw
  from a generator seeded elsewhere (numpy's `default_rng()`, a fresh
  `random.Random()`, torch's `Generator().seed()`) does not repeat.

Together: the draws are a function of the OS's bytes alone."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from unittest import mock

import numpy as np
import torch

Draw = Callable[[], Sequence[Any]]


@contextlib.contextmanager
def seeded_generators(seed: int) -> Iterator[None]:
    """torch's, numpy's and `random`'s global generators seeded with `seed`;
    their states are put back afterwards."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


@contextlib.contextmanager
def replayed_urandom() -> Iterator[None]:
    """`os.urandom` and `secrets.token_bytes` give the same bytes, call after
    call, each time this is entered (SHAKE-256 of a counter: uniform, so
    rejection sampling ends)."""
    calls = iter(range(1 << 62))

    def replay(size: int | None = None) -> bytes:
        count = 32 if size is None else size
        return hashlib.shake_256(next(calls).to_bytes(8, "big")).digest(count)

    with (
        mock.patch.object(os, "urandom", replay),
        mock.patch.object(secrets, "token_bytes", replay),
    ):
        yield


def _same(one: Any, other: Any) -> bool:
    if isinstance(one, bytes | str):
        return bool(one == other)
    return bool(np.array_equal(np.asarray(one), np.asarray(other)))


def assert_drawn_from_the_os(draw: Draw) -> None:
    """`draw`'s values are new under generators seeded alike, and the same
    under the same OS bytes whatever those generators' seeds."""
    runs = []
    for _ in range(2):
        with seeded_generators(0):
            runs.append(list(draw()))
    first, second = runs
    assert len(first) == len(second) > 0
    repeated = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if _same(a, b)]
    assert not repeated, f"draws {repeated} repeat under the same seeds of torch, numpy, random"
    runs = []
    for seed in (1, 2):
        with replayed_urandom(), seeded_generators(seed):
            runs.append(list(draw()))
    first, second = runs
    changed = [i for i, (a, b) in enumerate(zip(first, second, strict=True)) if not _same(a, b)]
    assert not changed, f"draws {changed} change with the seeds of torch, numpy or random"
