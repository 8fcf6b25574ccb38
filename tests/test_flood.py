"""A legitimate peer floods a receiver from many threads: past its share of
deliveries in progress it is refused OVERLOADED with the reason, and the
receiver goes on serving the honest peer (bench/flood.py has the figures)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from parties import boundary
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import UNSEALED, verify_log
from parties.roles import Role
from tests.helpers import running_parties

ROLES = {"deployer": Role.DEPLOYER, "alice": Role.END_USER, "mallory": Role.END_USER}


def _prompt(sender: str) -> list[Label]:
    return [Label(f"prompt:{sender}", Form.CIPHERTEXT)]


LIMITS = {
    # deliveries in progress: the 9th at once is refused
    "concurrency": (boundary.PEER_IN_FLIGHT_BYTES, "'mallory' has 8 deliveries in progress"),
    # payload bytes in progress (made small here: 4 payloads of 256 KiB)
    "bytes": (1 << 20, "'mallory' has 1 MiB of payloads in progress at most"),
}


@pytest.mark.parametrize("limit", list(LIMITS))
def test_a_flooding_peer_is_refused_and_the_honest_one_still_served(
    limit: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget, expected = LIMITS[limit]
    monkeypatch.setattr(boundary, "PEER_IN_FLIGHT_BYTES", budget)
    with running_parties(tmp_path, roles=ROLES) as parties:
        stop = threading.Event()
        refusals: list[Refused] = []
        admitted = [0]
        lock = threading.Lock()

        def flood() -> None:
            payload = b"\0" * (256 << 10)
            while not stop.is_set():
                try:
                    parties["mallory"].deliver(
                        "deployer", "walkthrough", "sealed_prompt", _prompt("mallory"), payload
                    )
                    outcome = None
                except Refused as refusal:
                    outcome = refusal
                with lock:
                    if outcome is None:
                        admitted[0] += 1
                    else:
                        refusals.append(outcome)

        flooders = [threading.Thread(target=flood) for _ in range(24)]
        for thread in flooders:
            thread.start()
        try:
            honest = [
                parties["alice"].deliver(
                    "deployer",
                    "walkthrough",
                    "sealed_prompt",
                    _prompt("alice"),
                    b"a sealed prompt of at least 28 bytes",
                )
                for _ in range(20)
            ]
        finally:
            stop.set()
            for thread in flooders:
                thread.join()
        assert len(honest) == 20  # every honest delivery got through (none raised)
        overloaded = [r for r in refusals if r.reason_name == "OVERLOADED"]
        assert overloaded, f"{admitted[0]} admitted, refusals: {refusals[:3]}"
        assert any(expected in r.detail for r in overloaded), overloaded[0].detail
        assert {r.reason_name for r in refusals} == {"OVERLOADED"}
        deployer = parties["deployer"]
        entries, problems = verify_log(
            deployer.log.directory,
            "deployer",
            parties.run_id,
            deployer.keys.signing_key.public_key(),
        )
        assert [p.problem for p in problems if not p.note] == [UNSEALED]
        by_alice = [e for e in entries if e["peer"] == "alice" and e["outcome"] == "admitted"]
        assert len(by_alice) == 20
