"""The one encoding of JSON values whose bytes are hashed or signed: RFC 8785
(the JSON Canonicalization Scheme), through the `rfc8785` library.

Keys sorted by their UTF-16 code units, no whitespace, strings in UTF-8 with
only the escapes JSON requires, numbers as ECMAScript writes a double (so
5.0 is `5` and 1e-7 is `1e-7`). Whoever encodes a value and whoever checks
its hash get the same bytes from the same parsed JSON, whatever wrote it.

One extension: an integer beyond +-(2^53 - 1), which RFC 8785 refuses (a
double cannot hold every such integer), is written in full, as ECMAScript
writes every such integer that a double holds exactly. A peer's header may
carry a 64-bit sequence number or size, and the log must record it exactly.
NaN and the infinities have no JSON form: `ValueError`.
"""

from __future__ import annotations

from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        return b"".join(_parts(value))


def _parts(value: Any) -> list[bytes]:
    """The encoding of a value holding a wide integer: containers here, every
    other value (and every key) by the library."""
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("a JSON object's keys are strings")
        items = sorted(value.items(), key=lambda item: item[0].encode("utf-16be"))
        inner = [b"".join([rfc8785.dumps(key), b":", *_parts(item)]) for key, item in items]
        return [b"{", b",".join(inner), b"}"]
    if isinstance(value, list | tuple):
        return [b"[", b",".join(b"".join(_parts(item)) for item in value), b"]"]
    if isinstance(value, int) and not isinstance(value, bool):
        return [str(int(value)).encode()]
    return [rfc8785.dumps(value)]
