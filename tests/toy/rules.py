"""Which toy steps may cross between which roles, with which labels."""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role


class Step(enum.StrEnum):
    COUNT = "count"  # contributor -> collector: its count, as an aggregate
    TOTAL = "total"  # collector -> end user: the sum, public


RULES_TALLY = (
    Rule(
        Step.COUNT,
        Role.DATA_CONTRIBUTOR,
        Role.MODEL_CREATOR,
        (label_rule("tally:{sender}", Form.AGGREGATE),),
        max_payload=1024,
    ),
)
RULES_ANNOUNCE = (
    Rule(
        Step.TOTAL,
        Role.MODEL_CREATOR,
        Role.END_USER,
        (label_rule("tally:total", Form.PUBLIC),),
        max_payload=1024,
    ),
)
