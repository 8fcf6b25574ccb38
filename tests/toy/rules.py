"""Which toy steps may cross between which roles, with which labels."""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role


class Step(enum.StrEnum):
    COUNT = "count"  # contributor -> collector: its count, as an aggregate
    TOTAL = "total"  # collector -> end user: the sum, public


SMALL = 1024  # a count or a total: a few bytes
COUNT = label_rule("tally:{sender}", Form.AGGREGATE)  # a contributor's own count
TOTAL = label_rule("tally:total", Form.PUBLIC)

CONTRIBUTOR, COLLECTOR, READER = Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, Role.END_USER

RULES_TALLY = (Rule(Step.COUNT, CONTRIBUTOR, COLLECTOR, (COUNT,), max_payload=SMALL),)
RULES_ANNOUNCE = (Rule(Step.TOTAL, COLLECTOR, READER, (TOTAL,), max_payload=SMALL),)
