"""The one canonical JSON encoder (evidence.canonical): RFC 8785, with wide
integers written in full; and what the log makes of a value it cannot hold."""

from __future__ import annotations

from pathlib import Path

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from evidence.canonical import _parts, canonical_json
from tests.test_audit import integrity_findings, log_lines, write_lines


def test_rfc_8785_bytes_numbers_as_ecmascript_writes_them() -> None:
    value = {"b": [1, 5.0, 1e-7, 0.1], "a": "é\u2028\x01", "\U0001f600": None, "\uffff": True}
    assert canonical_json(value) == rfc8785.dumps(value)
    assert canonical_json({"time": 5.0, "size": 1e21}) == b'{"size":1e+21,"time":5}'
    # keys in UTF-16 order: an astral character sorts before U+FFFF
    assert canonical_json({"\uffff": 1, "\U0001f600": 2}).startswith('{"\U0001f600"'.encode())


def test_wide_integers_are_written_exactly() -> None:
    """A peer's header may carry a 64-bit sequence number or size."""
    wide = {"sequence": 2**64 - 1, "labels": [{"n": -(2**60)}], "size": 3}
    assert (
        canonical_json(wide)
        == b'{"labels":[{"n":-1152921504606846976}],"sequence":18446744073709551615,"size":3}'
    )
    assert canonical_json({"n": 2**53}) != canonical_json({"n": 2**53 + 1})


def library_encoding(value: object) -> bytes:
    """What the library writes (wide integers in full), without the fast path."""
    try:
        return rfc8785.dumps(value)
    except rfc8785.IntegerDomainError:
        return b"".join(_parts(value))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=500, deadline=None)
@given(JSON_VALUES)
def test_the_fast_path_writes_what_the_library_writes(value: object) -> None:
    """Values without floats go through the standard encoder: the same bytes,
    whatever the keys (astral ones go the library's way), strings and integers."""
    assert canonical_json(value) == library_encoding(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1: "not a string key"}])
def test_what_json_cannot_hold_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        canonical_json(value)


def test_a_nan_edited_into_a_log_is_a_hash_mismatch_not_a_crash(run_copy: Path) -> None:
    lines = log_lines(run_copy, "alice")
    edited = lines[0].replace(b'"size":', b'"size":NaN,"was":', 1)
    assert edited != lines[0]
    write_lines(run_copy, "alice", [edited, *lines[1:]])
    assert ("alice", 0, "entry hash does not match its contents") in integrity_findings(run_copy)
