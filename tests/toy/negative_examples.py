"""Fixed payloads of the toy protocols' steps that their receivers must
refuse, and honest ones (tests/payload_examples.py; checked by
tests/test_negative_examples.py). The template for a new protocol's table."""

from tests.payload_examples import Examples, as_json

# tally: a contributor's count of what it holds, 0 or more
TALLY: dict[str, Examples] = {
    "count": Examples(
        valid={"a count": as_json({"count": 7}), "nothing held": as_json({"count": 0})},
        refused={
            "a negative count": as_json({"count": -1}),
            "a count as a string": as_json({"count": "7"}),
            "a fractional count": as_json({"count": 7.5}),
            "a count as true": as_json({"count": True}),
            "no count": as_json({}),
            "the records counted beside their count": as_json({"count": 1, "records": ["r"]}),
            "a bare number": as_json(7),
            "not JSON": b"count=7",
        },
    ),
}
# announce: the sum of the counts and how many contributors sent one
ANNOUNCE: dict[str, Examples] = {
    "total": Examples(
        valid={"a total": as_json({"value": 12, "contributors": 3})},
        refused={
            "a negative total": as_json({"value": -12, "contributors": 3}),
            "a negative number of contributors": as_json({"value": 12, "contributors": -1}),
            "the total as a string": as_json({"value": "12", "contributors": 3}),
            "no number of contributors": as_json({"value": 12}),
            "each contributor's count beside the total": as_json(
                {"value": 12, "contributors": 3, "counts": {"hospital_1": 7}}
            ),
        },
    ),
}
