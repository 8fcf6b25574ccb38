"""The tally protocol, assembled."""

from parties.protocol import Artifacts, Protocol
from parties.roles import Role
from tests.toy import roles
from tests.toy.adversaries import ADVERSARIES
from tests.toy.messages import TALLY_MESSAGES
from tests.toy.rules import RULES_TALLY, Step

PROTOCOL = Protocol(
    name="tally",
    messages=TALLY_MESSAGES,
    rules=RULES_TALLY,
    handlers={(Role.MODEL_CREATOR, Step.COUNT): roles.on_count},
    actions={
        (Role.DATA_CONTRIBUTOR, "send_count"): roles.send_count,
        (Role.MODEL_CREATOR, "close"): roles.close,
    },
    stage=((Role.DATA_CONTRIBUTOR, "send_count"), (Role.MODEL_CREATOR, "close")),
    # the same two steps as parts, so that other stages may run between them
    parts={
        "counting": ((Role.DATA_CONTRIBUTOR, "send_count"),),
        "closing": ((Role.MODEL_CREATOR, "close"),),
    },
    artifacts=lambda params, part: Artifacts(
        makes=((Role.MODEL_CREATOR, roles.KEPT_TOTAL),) if part != "counting" else ()
    ),
    adversaries=ADVERSARIES,
    states={Role.MODEL_CREATOR: roles.CollectorState},
    holdings={Role.DATA_CONTRIBUTOR: roles.Contributor},
)
