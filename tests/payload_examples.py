"""Fixed payloads per protocol step, written by hand from what the protocol
means, never derived from its message definition (parties.message).

tests/test_protocol_fuzz.py makes its wrong payloads from the definition
under test, so a definition loosened by mistake (a 64-byte signature
field turned into any string, a bound dropped) loosens the fuzz with it
and nothing fails. These tables are the fixed point: each step's payloads
that the protocol says its receiver must refuse (a signature or digest of
the wrong length, a key or nonce of the wrong size, a field missing or one
that must never travel, a count out of range, a wrong JSON type, a body
missing or not what the step carries), and at least one an honest party
sends. tests/test_negative_examples.py checks each against the step's
definition through `Message.check`, the function the receiving boundary
applies (parties.policy.check_payload): every refused one must raise
BadPayload, every valid one must pass.

Each protocol keeps its table beside its code, in
`protocols/<protocol>/tests/negative_examples.py` (the toy protocols in
tests/toy/negative_examples.py): `EXAMPLES`, keyed by step. A new step
needs its entry there, or tests/test_negative_examples.py fails naming it.

`left_to_role` holds payloads the protocol refuses too, but in the
receiving role's own code: the definition admits them today. The test
checks they are still admitted, so that a definition made stricter to
refuse one fails it, saying to move the payload to `refused`.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.numpy import save as save_arrays


@dataclass(frozen=True)
class Examples:
    """One step's fixed payloads, each keyed by what it is."""

    refused: Mapping[str, bytes]  # what the receiving boundary must refuse, by why
    valid: Mapping[str, bytes] = field(default_factory=dict)  # what an honest party sends
    left_to_role: Mapping[str, bytes] = field(default_factory=dict)  # see the module's doc


def as_json(value: Any) -> bytes:
    """A JSON payload (NaN and infinity as Python's json writes them)."""
    return json.dumps(value).encode()


def framed(header: Any, body: bytes = b"") -> bytes:
    """A framed payload: the header's JSON length (4 bytes, big-endian), its
    JSON, then the body (parties.payload.pack, written out here)."""
    text = header if isinstance(header, bytes) else as_json(header)
    return struct.pack(">I", len(text)) + text + body


def hexed(size: int, fill: int = 0xAB) -> str:
    """`size` bytes as lowercase hex: a digest, a key, a nonce, a signature."""
    return (bytes([fill]) * size).hex()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def arrays(**named: np.ndarray) -> bytes:
    """A safetensors file holding `named`."""
    return save_arrays(dict(named))


def changed(base: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """`base` with `fields` set (added where it had none)."""
    return {**base, **fields}


def without(base: Mapping[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k not in names}


def npy(array: np.ndarray) -> bytes:
    """An array in numpy's own format: bytes that are not a safetensors file."""
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()
