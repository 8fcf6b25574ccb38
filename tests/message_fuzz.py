"""Wrong payloads for a protocol step, derived from its message definition
(parties.message) and laid over an honest payload of that step, so that
one thing at a time is wrong: a field of the wrong JSON type, out of its
declared range, length or pattern, NaN or infinite, missing or extra; a
list past its bound; a body damaged, truncated or oversized; framing
bytes that do not parse. The definition itself says whether a candidate
breaks it (`breaks`): if so, the receiving boundary must refuse it as
BAD_PAYLOAD; if not, it is structurally valid but wrong, and only the role
can judge it."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from parties.message import BadPayload, Body, Framing, Message
from parties.payload import split

Path = tuple[str | int, ...]
JSONSchema = dict[str, Any]

# values of each JSON type, to put where another type is declared
_OF_TYPE: dict[str, list[Any]] = {
    "integer": [7, -1, 2**64],
    "number": [0.5, float("nan"), float("inf"), float("-inf")],
    "string": ["7", ""],
    "boolean": [True],
    "null": [None],
    "array": [[], [1]],
    "object": [{}, {"x": 1}],
}


def _resolve(schema: JSONSchema, defs: dict[str, JSONSchema]) -> JSONSchema:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _options(schema: JSONSchema, defs: dict[str, JSONSchema]) -> list[JSONSchema]:
    schema = _resolve(schema, defs)
    if "anyOf" in schema:
        return [o for option in schema["anyOf"] for o in _options(option, defs)]
    return [schema]


def _child(schema: JSONSchema, key: str | int, defs: dict[str, JSONSchema]) -> JSONSchema | None:
    for option in _options(schema, defs):
        if isinstance(key, str) and key in option.get("properties", {}):
            return option["properties"][key]
        if isinstance(key, str) and isinstance(option.get("additionalProperties"), dict):
            return option["additionalProperties"]
        if isinstance(key, int) and "prefixItems" in option and key < len(option["prefixItems"]):
            return option["prefixItems"][key]
        if isinstance(key, int) and isinstance(option.get("items"), dict):
            return option["items"]
    return None


def _wrong_values(schema: JSONSchema, honest: Any, defs: dict[str, JSONSchema]) -> list[Any]:
    """Values the declared schema refuses (as far as it can be read), with
    values of every other JSON type; `breaks` has the final word."""
    wrong: list[Any] = [v for values in _OF_TYPE.values() for v in values]
    for option in _options(schema, defs):
        if "minimum" in option:
            wrong.append(option["minimum"] - 1)
        if "exclusiveMinimum" in option:
            wrong.append(option["exclusiveMinimum"])
        if "maximum" in option:
            wrong.append(option["maximum"] + 1)
        if "exclusiveMaximum" in option:
            wrong.append(option["exclusiveMaximum"])
        if "maxLength" in option:
            wrong.append("a" * (option["maxLength"] + 1))
        if "maxItems" in option:
            wrong.append(
                [honest[0] if isinstance(honest, list) and honest else 0] * (option["maxItems"] + 1)
            )
        if "maxProperties" in option:
            wrong.append({f"p{i}": 0 for i in range(option["maxProperties"] + 1)})
        if isinstance(honest, str) and honest:
            # a hex field one digit short or long, or holding a non-hex digit
            wrong += [honest[:-1], honest + "0", "Z" + honest[1:], honest.upper()]
        if isinstance(honest, list) and honest:
            wrong += [honest[:-1], honest + honest[-1:]]
    return wrong


def _paths(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:3]):  # the first few stand for the rest
            yield from _paths(child, (*path, index))


def _replaced(document: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(document, dict):
        return {**document, head: _replaced(document[head], rest, new)}
    copy = list(document)
    copy[head] = _replaced(copy[head], rest, new)  # type: ignore[index]
    return copy


def _dropped(document: Any, path: Path) -> Any:
    parent, key = path[:-1], path[-1]
    node = document
    for part in parent:
        node = node[part]
    if isinstance(node, dict):
        trimmed = {k: v for k, v in node.items() if k != key}
    else:
        trimmed = [v for i, v in enumerate(node) if i != key]
    return _replaced(document, parent, trimmed)


def field_mutations(message: Message, header: Any) -> list[Any]:
    """Every header the definition's schema suggests is wrong, one change each."""
    assert message.fields is not None
    schema = message.fields.model_json_schema()
    defs = schema.get("$defs", {})
    found: list[Any] = []
    for path, value in _paths(header):
        declared: JSONSchema | None = schema
        for key in path:
            declared = _child(declared, key, defs) if declared is not None else None
        if declared is None:
            continue
        found += [_replaced(header, path, wrong) for wrong in _wrong_values(declared, value, defs)]
        if path:
            found.append(_dropped(header, path))
        if isinstance(value, dict):
            found.append(_replaced(header, path, {**value, "unexpected": 1}))
    return found


def _frame(header: Any, body: bytes) -> bytes:
    text = json.dumps(header).encode()  # NaN and Infinity as JSON's non-standard tokens
    return struct.pack(">I", len(text)) + text + body


def _body_mutations(body: bytes, kind: Body | None, most: int | None) -> list[bytes]:
    found = [b"", body[: len(body) // 2], body[:-1], body + b"\x00"]
    if body:
        middle = len(body) // 2
        found.append(body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :])
    if kind is Body.TENSORS:
        found += [b"\xff" * 16, struct.pack("<Q", 1 << 40) + b"{}"]
    if most is not None and most < 1 << 20:
        found.append(b"\x00" * (most + 1))
    return found


def wrong_payloads(message: Message, honest: bytes) -> st.SearchStrategy[bytes]:
    """A strategy of wrong payloads for the step `message` defines."""
    malformed = st.one_of(
        st.binary(max_size=64),
        st.integers(0, max(0, len(honest) - 1)).map(lambda n: honest[:n]),
        st.sampled_from([b"[]", b"null", b'{"a": NaN}', b"\x00\x00\x00\x09not json!", b"\xff" * 8]),
    )
    if message.framing is Framing.OPAQUE:
        return st.one_of(
            malformed, st.sampled_from(_body_mutations(honest, None, message.max_bytes))
        )
    if message.framing is Framing.JSON:
        header, body = json.loads(honest), b""
    else:
        raw, body = split(honest)
        header = json.loads(raw)
    fields = field_mutations(message, header) if message.fields is not None else []
    if message.framing is Framing.JSON:
        candidates = [json.dumps(h).encode() for h in fields]
    else:
        candidates = [_frame(h, body) for h in fields]
        candidates += [_frame(header, b) for b in _body_mutations(body, message.body, None)]
    return st.one_of(malformed, st.sampled_from(candidates)) if candidates else malformed


def breaks(message: Message, payload: bytes) -> bool:
    """Whether `payload` breaks the definition (the boundary must refuse it)."""
    try:
        message.check(payload)
    except BadPayload:
        return True
    return False
