"""A payload framing shared by protocols: a JSON header, then an optional
binary body (weights, arrays, ciphertext), so that bulk bytes are not
hex-encoded into JSON. Nothing here unpickles."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any

from parties.errors import AirlockError


def pack(meta: Mapping[str, Any], body: bytes = b"") -> bytes:
    header = json.dumps(meta).encode()
    return struct.pack(">I", len(header)) + header + body


def split(payload: bytes) -> tuple[bytes, bytes]:
    """(the header's JSON bytes, body); AirlockError if not framed this way."""
    if len(payload) < 4:
        raise AirlockError("payload too short")
    (size,) = struct.unpack(">I", payload[:4])
    if size > len(payload) - 4:
        raise AirlockError("payload header runs past the payload")
    return payload[4 : 4 + size], payload[4 + size :]


def unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, body); AirlockError if the payload is not framed this way."""
    header, body = split(payload)
    try:
        meta = json.loads(header)
    except ValueError:
        raise AirlockError("payload header is not JSON") from None
    if not isinstance(meta, dict):
        raise AirlockError("payload header is not an object")
    return meta, body
