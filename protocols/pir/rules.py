"""Which pir steps may cross between which roles, with which labels.

An external database receives catalog requests (public) and PIR queries,
and nothing else: an XOR query is a share of the wanted record's position
(each replica holds one of two), a SimplePIR query an LWE ciphertext. A
query in any other form, such as the question in the clear, is refused by
this rule before any handler sees it.
"""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "pir"

USER, DATABASE = Role.END_USER, Role.EXTERNAL_DATABASE
# the stage's actions: the database builds its index, then the user retrieves
BUILD_INDEX, RETRIEVE = "build_index", "retrieve"


class Step(enum.StrEnum):
    CATALOG_REQUEST = "catalog_request"
    CATALOG = "catalog"
    PIR_QUERY = "pir_query"
    PIR_ANSWER = "pir_answer"
    EVALUATION_KEYS = "evaluation_keys"  # user -> database: a public CKKS context, once
    RANK_REQUEST = "rank_request"  # user -> database: the question's embedding, encrypted
    RANK_ANSWER = "rank_answer"  # database -> user (reply): every document's score, encrypted


def query_form(scheme: str) -> Form:
    """The form of a scheme's queries and answers: XOR shares, LWE ciphertexts."""
    return Form.SHARE if scheme == "xor" else Form.CIPHERTEXT


RULES = (
    Rule(Step.CATALOG_REQUEST, USER, DATABASE, (label_rule("catalog:{receiver}", Form.PUBLIC),)),
    Rule(
        Step.CATALOG,
        DATABASE,
        USER,
        (label_rule("catalog:{sender}", Form.PUBLIC),),
        reply_to=(Step.CATALOG_REQUEST,),
    ),
    Rule(
        Step.PIR_QUERY,
        USER,
        DATABASE,
        (label_rule("query:{sender}", Form.SHARE, Form.CIPHERTEXT),),
    ),
    Rule(
        Step.PIR_ANSWER,
        DATABASE,
        USER,
        (label_rule("records:{sender}", Form.SHARE, Form.CIPHERTEXT),),
        reply_to=(Step.PIR_QUERY,),
    ),
    # ranking under CKKS: the evaluation keys are public material; the query
    # and the scores are ciphertexts under the end user's own key
    Rule(
        Step.EVALUATION_KEYS, USER, DATABASE, (label_rule("evaluation_keys:{sender}", Form.PUBLIC),)
    ),
    Rule(Step.RANK_REQUEST, USER, DATABASE, (label_rule("query:{sender}", Form.CIPHERTEXT),)),
    Rule(
        Step.RANK_ANSWER,
        DATABASE,
        USER,
        (label_rule("scores:{receiver}", Form.CIPHERTEXT),),
        reply_to=(Step.RANK_REQUEST,),
    ),
)
