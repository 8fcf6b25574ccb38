"""The audit's checks over the logs of a run: sender signatures, deliveries
agree, the visibility matrix and the guarantees, the content scan."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cryptography.exceptions import InvalidSignature

from evidence.claims import Claim
from orchestrator.audit.run import RunRecord
from orchestrator.scenario import Scenario
from parties.envelope import header_from_bytes, signed_message
from parties.errors import Refused
from parties.labels import Form
from parties.log import (
    Direction,
    Outcome,
    header_fields,
    labels_text,
)
from parties.policy import Policy
from parties.protocol import FINGERPRINTS
from parties.roles import Role
from parties.wire import airlock_pb2 as pb

# refusals that come after the sender's signature verified: the header is the
# sender's own, and its payload may have reached the receiver
_AUTHENTICATED_REFUSALS = frozenset(
    pb.RefusalReason.Name(r)
    for r in (
        pb.OVERSIZED,
        pb.REPLAYED,
        pb.UNKNOWN_PROTOCOL,
        pb.UNKNOWN_STEP,
        pb.RULE_NOT_PERMITTED,
        pb.GUARANTEE_VIOLATED,
        pb.DIGEST_MISMATCH,
        pb.OVERLOADED,
        pb.BAD_PAYLOAD,
    )
)
# a sender's outcomes that mean the envelope left it and reached the peer
_LEFT = frozenset({Outcome.DELIVERED, Outcome.REFUSED, Outcome.REPLIED})


def check_signatures(logs: dict[str, list[dict[str, Any]]], keys: dict[str, Any]) -> Claim:
    claim = Claim("sender signatures")
    for name, entries in logs.items():
        for entry in entries:
            if entry.get("direction") != Direction.IN or entry.get("outcome") != Outcome.ADMITTED:
                continue
            claim.checked += 1
            index = entry.get("index")
            try:
                header_bytes = bytes.fromhex(entry.get("header", ""))
                header = header_from_bytes(header_bytes)
                keys[header.sender].verify(
                    bytes.fromhex(entry.get("signature", "")), signed_message(header_bytes)
                )
            except (ValueError, KeyError, Refused, InvalidSignature):
                claim.fail(name, index, "admitted envelope's signature does not verify")
                continue
            recorded = {k: entry.get(k) for k in header_fields(header)}
            if recorded != header_fields(header) or entry.get("peer") != header.sender:
                claim.fail(name, index, "log entry disagrees with the signed header")
    return claim


def check_agreement(
    logs: dict[str, list[dict[str, Any]]], lost: frozenset[str] = frozenset()
) -> Claim:
    """`lost`: the parties that dropped out mid-run (their logs unsealed)."""
    claim = Claim("deliveries agree")
    seen: dict[tuple[str, str, str], str] = {}
    for name, entries in logs.items():
        for entry in entries:
            if entry.get("header_sha256"):
                seen[(name, entry["direction"], entry["header_sha256"])] = entry.get("outcome", "")
    expected_at_receiver = {
        Outcome.DELIVERED: {Outcome.ADMITTED},
        Outcome.REFUSED: {Outcome.REFUSED},
        Outcome.REPLIED: {Outcome.ADMITTED, Outcome.REFUSED},
    }
    for name, entries in logs.items():
        for entry in entries:
            peer, digest, outcome = (
                entry.get("peer", ""),
                entry.get("header_sha256", ""),
                entry.get("outcome"),
            )
            if peer not in logs or not digest:
                continue
            if entry["direction"] == Direction.OUT and outcome in expected_at_receiver:
                claim.checked += 1
                theirs = seen.get((peer, Direction.IN, digest))
                if theirs not in expected_at_receiver[Outcome(outcome)]:
                    claim.fail(
                        name,
                        entry["index"],
                        f"{outcome} to {peer}, but {peer}'s log has {theirs or 'no entry'} for it",
                    )
            elif entry["direction"] == Direction.OUT and outcome == Outcome.WITHHELD:
                claim.checked += 1
                theirs = seen.get((peer, Direction.IN, digest))
                if theirs is not None:
                    claim.fail(
                        name,
                        entry["index"],
                        f"withheld from {peer}, but {peer}'s log has {theirs} for it",
                    )
            elif entry["direction"] == Direction.IN and outcome == Outcome.ADMITTED:
                claim.checked += 1
                theirs = seen.get((peer, Direction.OUT, digest))
                # `sending` alone: the sender died after the envelope left;
                # `undelivered` to a party that was lost: it admitted the
                # envelope and died before its answer got back
                agreeing = {Outcome.DELIVERED, Outcome.REPLIED, Outcome.SENDING}
                if name in lost:
                    agreeing.add(Outcome.UNDELIVERED)
                if theirs not in agreeing:
                    claim.fail(
                        name,
                        entry["index"],
                        f"admitted from {peer}, but {peer}'s log has {theirs or 'no entry'} for it",
                    )
    return claim


def _reached(entry: dict[str, Any], settled: set[str]) -> bool:
    """Whether this entry shows an envelope reaching its receiver (the log's
    owner for an incoming entry, its peer for an outgoing one). `settled`:
    the header digests whose outcome the same log records after `sending`;
    a `sending` entry with none (the sender died mid-send) may have left."""
    direction, outcome = entry.get("direction"), entry.get("outcome")
    if direction == Direction.IN:
        return outcome == Outcome.ADMITTED or (
            outcome == Outcome.REFUSED and entry.get("refusal") in _AUTHENTICATED_REFUSALS
        )
    if outcome == Outcome.SENDING:
        return entry.get("header_sha256") not in settled
    return direction == Direction.OUT and outcome in _LEFT


Seen = dict[tuple[str, str], tuple[str, int]]  # (party, asset) -> (log owner, entry)


def visibility_matrix(
    logs: dict[str, list[dict[str, Any]]],
) -> tuple[dict[str, dict[str, Form]], Seen]:
    """party -> asset -> most revealing form that reached it, and the log
    entry that first showed it (the receiver's, or the sender's)."""
    matrix: dict[str, dict[str, Form]] = defaultdict(dict)
    first_seen: Seen = {}
    for name, entries in logs.items():
        matrix[name]
        settled = {
            e.get("header_sha256", "")
            for e in entries
            if e.get("direction") == Direction.OUT and e.get("outcome") != Outcome.SENDING
        }
        for entry in entries:
            if not _reached(entry, settled):
                continue
            receiver = name if entry.get("direction") == Direction.IN else entry.get("peer", "")
            if receiver not in logs:
                continue
            for label in entry.get("labels", []):
                form, asset = Form.parse(label["form"]), label["asset"]
                current = matrix[receiver].get(asset)
                if current is None or form < current:
                    matrix[receiver][asset] = form
                    first_seen[(receiver, asset)] = (name, entry["index"])
    return dict(matrix), first_seen


def check_guarantees(
    scenario: Scenario,
    visibility: dict[str, dict[str, Form]],
    first_seen: Seen,
) -> list[Claim]:
    claims = []
    for guarantee in scenario.policy_guarantees():
        claim = Claim(f"guarantee: {guarantee.name}")
        for party, assets in visibility.items():
            role = scenario.role_of(party)
            for asset, form in assets.items():
                if guarantee.covers(party, role, asset):
                    claim.checked += 1
                    if not form.reveals_at_most(guarantee.max_form):
                        owner, index = first_seen[(party, asset)]
                        where = "" if owner == party else f" (sent to it: {owner} entry {index})"
                        claim.fail(
                            party,
                            index if owner == party else None,
                            f"saw {asset} as {form}; allowed at most {guarantee.max_form}{where}",
                        )
        claims.append(claim)
    return claims


def _needles(
    scenario: Scenario, manifest: dict[str, Any]
) -> dict[tuple[str, str, str], list[bytes]]:
    """What the content scan looks for, by (claim name, asset): the scenario's
    canaries, and the fingerprints (hex) that actions reported to the
    harness, e.g. a contributor's canaries and windows of its raw updates."""
    needles: dict[tuple[str, str, str], list[bytes]] = defaultdict(list)
    for canary in scenario.canaries:
        needles[(f"canary {canary.asset}", canary.asset, "the canary")].append(
            canary.value.encode()
        )
    for action in manifest.get("actions", []):
        result = action.get("result")
        reported = result.get(FINGERPRINTS, {}) if isinstance(result, dict) else {}
        for asset, values in reported.items():
            title = f"content scan: {asset} (fingerprints from {action.get('party')})"
            key = (title, asset, "a fingerprint")
            needles[key] += [bytes.fromhex(v) for v in values]
    return needles


def scan_canaries(
    run: RunRecord,
    scenario: Scenario,
    manifest: dict[str, Any],
    logs: dict[str, list[dict[str, Any]]],
) -> list[Claim]:
    """Search every party's received bytes for each canary and fingerprint of
    an asset it may not see in plaintext, whatever the labels claim."""
    policy = Policy(protocols={}, guarantees=tuple(scenario.policy_guarantees()))
    claims = []
    for (title, asset, what), values in _needles(scenario, manifest).items():
        claim = Claim(title)
        for name, entries in logs.items():
            role: Role = scenario.role_of(name)
            if policy.entitled_to_plaintext(name, role, asset):
                continue
            for entry in entries:
                if entry.get("direction") != Direction.IN or not entry.get("blob"):
                    continue
                claim.checked += 1
                data = run.blob(name, entry) or b""
                if any(value in data for value in values):
                    claim.fail(
                        name,
                        entry["index"],
                        f"received bytes contain {what} of {asset} "
                        f"(labelled {labels_text(entry.get('labels', []))})",
                    )
        claims.append(claim)
    return claims
