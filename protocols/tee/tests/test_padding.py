"""Sealed prompts and answers are padded inside the seal to the scenario's
size buckets (padding.py), so the host's log gives bucket sizes, not the
length of each prompt (question plus the retrieved guideline) or answer:
the padded form round-trips, malformed padding is refused with its reason,
bad buckets are refused when the scenario is parsed (naming the key), and
through the real runtime two prompts of different lengths reach the host
as envelopes of one size."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.scenario import load_scenario, parse_scenario
from parties.errors import ConfigError
from parties.log_check import read_entries
from protocols.tee import channel
from protocols.tee.padding import (
    ANSWER_BUCKETS,
    LENGTH_BYTES,
    REQUEST_BUCKETS,
    PaddingError,
    cost,
    pad,
    unpad,
)
from protocols.tee.settings import Settings
from tests.helpers import failing, result_of, run_text, with_adversary

_, SCENARIO = load_scenario("tee-inference")
PROMPTS: list[str] = tomllib.loads(SCENARIO)["parties"]["alice"]["prompts"]
# the first prompt without its guideline: 108 characters shorter
SHORT = "question: how should asthma be treated in adults?\nanswer:"
BUCKETS = (64, 256, 1024)


def test_padding_round_trips_to_the_smallest_bucket_that_holds_it() -> None:
    for size in (0, 1, 60, 64 - LENGTH_BYTES, 64 - LENGTH_BYTES + 1, 700, 1024 - LENGTH_BYTES):
        message = bytes(range(256)) * 4
        message = message[:size]
        padded = pad(message, BUCKETS)
        assert len(padded) == min(b for b in BUCKETS if b >= size + LENGTH_BYTES)
        assert unpad(padded, BUCKETS) == message
    # trailing zero bytes of the message are the message's, not padding
    assert unpad(pad(b"ab\x00\x00", BUCKETS), BUCKETS) == b"ab\x00\x00"


def test_a_message_longer_than_the_largest_bucket_holds_is_refused() -> None:
    with pytest.raises(PaddingError, match="the request is 1021 bytes, more than the largest"):
        pad(bytes(1024 - LENGTH_BYTES + 1), BUCKETS, "request")


@pytest.mark.parametrize(
    ("padded", "reason"),
    [
        (b"", "is 0 bytes, not one of the buckets"),
        (pad(b"x", BUCKETS)[:-1], "is 63 bytes, not one of the buckets"),
        (pad(b"x", BUCKETS) + b"\x00", "is 65 bytes, not one of the buckets"),
        ((61).to_bytes(4, "big") + bytes(60), "declares 61 bytes, more than it holds"),
        ((0xFFFFFFFF).to_bytes(4, "big") + bytes(60), "declares 4294967295 bytes"),
        (pad(b"x", BUCKETS)[:-1] + b"\x01", "padding of the answer is not all zero bytes"),
        (pad(b"x", (256,)), "not padded to the smallest bucket that holds it"),
    ],
)
def test_malformed_padding_is_refused_with_its_reason(padded: bytes, reason: str) -> None:
    with pytest.raises(PaddingError, match=reason):
        unpad(padded, BUCKETS, "answer")


def test_the_channel_pads_inside_the_seal_and_refuses_other_padding() -> None:
    keys = channel.new_key_pair()
    public, aad = channel.public_bytes(keys), b"alice/1"
    sizes = set()
    for prompt in (b"p", b"p" * 300):
        sealed, user = channel.seal_request(public, prompt, aad)
        sizes.add(len(sealed))
        opened, enclave = channel.open_request(keys, sealed, aad)
        assert opened == prompt
        answers = {len(channel.seal_answer(enclave, a, aad)) for a in (b"a", b"a" * 2000)}
        assert answers == {12 + ANSWER_BUCKETS[0] + 16}
        answer = channel.seal_answer(enclave, b"answer", aad)
        assert channel.open_answer(user, answer, aad) == b"answer"
        with pytest.raises(PaddingError, match="not one of the buckets"):
            channel.open_answer(user, answer, aad, (128, 8192))
    assert sizes == {channel.ENC_SIZE + REQUEST_BUCKETS[0] + 16}
    # sealed to other buckets than the enclave's, or to a larger one than needed
    other, _ = channel.seal_request(public, b"p", aad, (1000,))
    with pytest.raises(PaddingError, match="the padded request is 1000 bytes, not one of"):
        channel.open_request(keys, other, aad)
    larger, _ = channel.seal_request(public, b"p", aad, (2048,))
    with pytest.raises(PaddingError, match="not padded to the smallest bucket"):
        channel.open_request(keys, larger, aad)
    with pytest.raises(PaddingError, match="more than the largest padding bucket"):
        channel.seal_request(public, bytes(REQUEST_BUCKETS[-1]), aad)


def test_what_padding_cost_is_counted_per_bucket() -> None:
    assert cost([10, 100, 300], BUCKETS) == {
        "buckets": [64, 256, 1024],
        "count": 3,
        "per_bucket": {"64": 1, "256": 1, "1024": 1},
        "plaintext_bytes": 410,
        "padded_bytes": 1344,
        "added_bytes": 934,
        "added_min": 54,
        "added_max": 724,
    }
    assert cost([], BUCKETS)["added_bytes"] == 0


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("[512, 256]", "request_buckets: Value error, bucket sizes must strictly increase"),
        ("[512, 512]", "request_buckets: Value error, bucket sizes must strictly increase"),
        ("[]", "request_buckets: Value error, give 1 to 16 bucket sizes, not 0"),
        ("[0]", "request_buckets.0: Input should be greater than or equal to 16"),
        ("[512, -1]", "request_buckets.1: Input should be greater than or equal to 16"),
        ("[4194304]", "request_buckets.0: Input should be less than or equal to 1048576"),
        ("[512.0]", "request_buckets.0: Input should be a valid integer"),
        ("[true]", "request_buckets.0: Input should be a valid integer"),
        ('"512"', "request_buckets: Input should be a valid tuple"),
    ],
)
def test_bad_buckets_are_refused_when_the_scenario_is_parsed(given: str, error: str) -> None:
    text = SCENARIO.replace(
        "params = { max_new_tokens = 24 }",
        f"params = {{ max_new_tokens = 24, request_buckets = {given} }}",
    )
    with pytest.raises(ConfigError) as refused:
        parse_scenario(text, "test")
    assert f"stages[0].params.{error}" in str(refused.value)
    with pytest.raises(ValidationError, match="answer_buckets"):
        Settings.model_validate({"answer_buckets": [16] * 17})


def test_existing_scenarios_are_padded_by_default() -> None:
    for name in ("tee-inference", "healthcare"):
        _, text = load_scenario(name)
        settings = Settings.model_validate(parse_scenario(text, name).stage_settings()["tee"])
        assert settings.request_buckets == REQUEST_BUCKETS
        assert settings.answer_buckets == ANSWER_BUCKETS


def with_prompts(prompts: list[str], params: str = "max_new_tokens = 24") -> str:
    """tee-inference with alice asking `prompts`, under the stage params `params`."""
    listed = "prompts = [\n" + "".join(f"    {json.dumps(p)},\n" for p in prompts) + "]"
    text = re.sub(r"^prompts = \[\n.*?^\]", lambda _: listed, SCENARIO, flags=re.M | re.S)
    return text.replace("params = { max_new_tokens = 24 }", f"params = {{ {params} }}")


def host_sizes(run: Path) -> dict[str, list[int]]:
    """step -> the size of each payload the host admitted or sent on, from its own log."""
    sizes: dict[str, list[int]] = {}
    for entry in read_entries(run / "parties" / "deployer", "deployer")[0]:
        if entry["outcome"] in ("admitted", "delivered", "replied"):
            sizes.setdefault(entry["step"], []).append(entry["size"])
    return sizes


def test_prompts_of_different_lengths_reach_the_host_as_envelopes_of_one_size(
    tmp_path: Path,
) -> None:
    """The host's log: one size for every sealed prompt (in from alice, out
    to the enclave) and one for every sealed answer, though the prompts
    differ by a guideline and the answers by their text (without padding,
    each size was its plaintext's length plus a constant)."""
    prompts = [PROMPTS[0], SHORT, PROMPTS[1]]
    assert len({len(p) for p in prompts}) > 1
    result = run_text(with_prompts(prompts), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    asked = result_of(result, "alice", "ask")
    assert asked["refused"] == [] and len(asked["answers"]) == 3
    assert len({len(a["output"]) for a in asked["answers"]}) > 1
    sizes = host_sizes(tmp_path / "run")
    for step in ("sealed_prompt", "enclave_prompt", "enclave_answer", "sealed_answer"):
        assert len(sizes[step]) == 3 and len(set(sizes[step])) == 1, (step, sizes[step])
    # what padding cost, as alice reports it (and report.md shows)
    padding = asked["padding"]
    assert padding["requests"]["per_bucket"] == {str(REQUEST_BUCKETS[0]): 3}
    assert padding["answers"]["per_bucket"] == {str(ANSWER_BUCKETS[0]): 3}
    assert padding["requests"]["padded_bytes"] == 3 * REQUEST_BUCKETS[0]
    added = padding["requests"]["added_bytes"] + padding["answers"]["added_bytes"]
    assert added == 3 * (REQUEST_BUCKETS[0] + ANSWER_BUCKETS[0]) - (
        padding["requests"]["plaintext_bytes"] + padding["answers"]["plaintext_bytes"]
    )
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"| alice | prompts | {', '.join(map(str, REQUEST_BUCKETS))} |" in report


def test_a_host_recording_sealed_sizes_sees_only_bucket_sizes(tmp_path: Path) -> None:
    """length_curious: the sizes of the sealed bytes it relays, as it would
    use them to tell prompts apart: one per bucket, HPKE's `enc` and tag
    (and the answer's AES-GCM nonce and tag) beyond the bucket."""
    text = with_adversary(with_prompts([PROMPTS[0], SHORT]), "deployer", "length_curious")
    result = run_text(text, tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    seen = result_of(result, "deployer", "show_sealed_sizes")
    assert seen["distinct_prompt_sizes"] == [channel.ENC_SIZE + REQUEST_BUCKETS[0] + 16]
    assert seen["distinct_answer_sizes"] == [12 + ANSWER_BUCKETS[0] + 16]
    assert len(seen["prompt_sizes"]) == len(seen["answer_sizes"]) == 2


def test_a_prompt_or_answer_too_long_for_its_buckets_is_refused(tmp_path: Path) -> None:
    """A request the largest request bucket cannot hold is not sent; an
    answer the largest answer bucket cannot hold is not sealed: the
    enclave refuses the prompt, naming the sizes."""
    long = SHORT.replace("adults?", "adults? " + "really, " * 60)
    text = with_prompts([long, SHORT], "max_new_tokens = 24, request_buckets = [512]")
    result = run_text(text, tmp_path / "run")
    assert result.failure is None, result.failure
    asked = result_of(result, "alice", "ask")
    (refused,) = asked["refused"]
    assert refused.startswith(repr(long)) and "the request is " in refused
    assert "more than the largest padding bucket (512 bytes, 4 of them its length)" in refused
    assert [a["prompt"] for a in asked["answers"]] == [SHORT]
    assert asked["padding"]["requests"]["count"] == 1
    small = with_prompts([SHORT], "max_new_tokens = 24, answer_buckets = [1024]")
    result = run_text(small, tmp_path / "small")
    asked = result_of(result, "alice", "ask")
    (refused,) = asked["refused"]
    assert "enclave_prompt refused: the answer is " in refused, refused
    assert "more than the largest padding bucket (1024 bytes" in refused
