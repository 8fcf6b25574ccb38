"""Checks 3, 4 and 5 of admission: the active protocols' rules, the
scenario's guarantees about who may see which asset in which form, and the
step's message definition."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from parties.envelope import Header
from parties.errors import Refused
from parties.labels import Form, asset_matches
from parties.message import BadPayload
from parties.protocol import Protocol
from parties.roles import Role
from parties.wire import airlock_pb2 as pb


@dataclass(frozen=True)
class Guarantee:
    """`viewers` (party names or role names) see `asset` (a glob) in a form no
    more revealing than `max_form`."""

    name: str
    asset: str
    viewers: frozenset[str]
    max_form: Form

    def covers(self, party: str, role: Role, asset: str) -> bool:
        return (party in self.viewers or role.value in self.viewers) and asset_matches(
            self.asset, asset
        )


@dataclass(frozen=True)
class Policy:
    protocols: Mapping[str, Protocol]
    guarantees: tuple[Guarantee, ...]

    def check(
        self, header: Header, sender_role: Role, receiver_role: Role, answering: str | None = None
    ) -> None:
        """Raise Refused unless a rule permits the envelope and no guarantee
        forbids it. `answering` is the step this envelope answers, if it came
        back as a reply."""
        protocol = self.protocols.get(header.protocol)
        if protocol is None:
            raise Refused(pb.UNKNOWN_PROTOCOL, f"protocol {header.protocol!r} is not active")
        if header.step not in protocol.steps:
            raise Refused(pb.UNKNOWN_STEP, f"{header.protocol} has no step {header.step!r}")
        rule = protocol.rule_for(header.step, sender_role, receiver_role)
        if rule is None or not rule.permits(header.labels, header.sender, header.receiver):
            shown = ", ".join(str(label) for label in header.labels)
            raise Refused(
                pb.RULE_NOT_PERMITTED,
                f"{header.protocol}.{header.step} from {sender_role} to {receiver_role} "
                f"with [{shown}] is not permitted",
            )
        step = f"{header.protocol}.{header.step}"
        if rule.max_payload is not None and header.payload_size > rule.max_payload:
            raise Refused(
                pb.OVERSIZED,
                f"{step} carries at most {rule.max_payload} bytes, not {header.payload_size}",
            )
        if rule.reply_to and answering not in rule.reply_to:
            raise Refused(
                pb.RULE_NOT_PERMITTED,
                f"{step} may only answer {' or '.join(rule.reply_to)}, "
                f"not {answering or 'nothing (it came unsolicited)'}",
            )
        if not rule.reply_to and answering is not None:
            raise Refused(pb.RULE_NOT_PERMITTED, f"{step} is not an answer to {answering}")
        for label in header.labels:
            for guarantee in self.guarantees:
                if guarantee.covers(header.receiver, receiver_role, label.asset) and not (
                    label.form.reveals_at_most(guarantee.max_form)
                ):
                    raise Refused(
                        pb.GUARANTEE_VIOLATED,
                        f"guarantee {guarantee.name!r}: {header.receiver} may see "
                        f"{label.asset} at most as {guarantee.max_form}, not {label.form}",
                    )

    def check_payload(self, header: Header, payload: bytes) -> None:
        """Check 5, once the payload is read: it fits its step's message
        definition (parties.message), or Refused BAD_PAYLOAD naming why."""
        message = self.protocols[header.protocol].messages[header.step]
        try:
            message.check(payload)
        except BadPayload as error:
            raise Refused(pb.BAD_PAYLOAD, f"{header.protocol}.{header.step}: {error}") from None

    def entitled_to_plaintext(self, party: str, role: Role, asset: str) -> bool:
        return all(
            Form.PLAINTEXT.reveals_at_most(g.max_form)
            for g in self.guarantees
            if g.covers(party, role, asset)
        )
