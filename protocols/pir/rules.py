"""Which pir steps may cross between which roles, with which labels.

An external database receives catalog requests (public) and PIR queries,
and nothing else: an XOR query is a share of the wanted record's position
(each replica holds one of two), a SimplePIR query an LWE ciphertext. A
query in any other form, such as the question in the clear, is refused by
this rule before any handler sees it.
"""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "pir"

USER, DATABASE = Role.END_USER, Role.EXTERNAL_DATABASE

RULES = (
    Rule("catalog_request", USER, DATABASE, (label_rule("catalog:{receiver}", Form.PUBLIC),)),
    Rule(
        "catalog",
        DATABASE,
        USER,
        (label_rule("catalog:{sender}", Form.PUBLIC),),
        reply_to=("catalog_request",),
    ),
    Rule("pir_query", USER, DATABASE, (label_rule("query:{sender}", Form.SHARE, Form.CIPHERTEXT),)),
    Rule(
        "pir_answer",
        DATABASE,
        USER,
        (label_rule("records:{sender}", Form.SHARE, Form.CIPHERTEXT),),
        reply_to=("pir_query",),
    ),
)
