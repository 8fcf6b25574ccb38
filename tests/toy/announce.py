"""The announce protocol, assembled: a later stage that uses what the
collector kept from the tally."""

from parties.protocol import Artifacts, Protocol
from parties.roles import Role
from tests.toy import roles
from tests.toy.messages import ANNOUNCE_MESSAGES
from tests.toy.rules import RULES_ANNOUNCE, Step

PROTOCOL = Protocol(
    name="announce",
    messages=ANNOUNCE_MESSAGES,
    rules=RULES_ANNOUNCE,
    handlers={(Role.END_USER, Step.TOTAL): roles.on_total},
    actions={(Role.MODEL_CREATOR, "announce"): roles.announce},
    stage=((Role.MODEL_CREATOR, "announce"),),
    artifacts=lambda params, part: Artifacts(needs=((Role.MODEL_CREATOR, roles.KEPT_TOTAL),)),
)
