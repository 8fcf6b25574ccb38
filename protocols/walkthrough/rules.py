"""Which walkthrough steps may cross between which roles, with which labels."""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "walkthrough"
SMALL = 64 << 10  # commitments, cards, catalogues and receipts: a few hundred bytes


class Step(enum.StrEnum):
    DATASET_COMMITMENT = "dataset_commitment"
    MODEL_CARD = "model_card"
    CATALOG_REQUEST = "catalog_request"
    CATALOG = "catalog"
    SEALED_PROMPT = "sealed_prompt"
    PROMPT_RECEIPT = "prompt_receipt"


RULES = (
    Rule(
        Step.DATASET_COMMITMENT,
        Role.DATA_CONTRIBUTOR,
        Role.MODEL_CREATOR,
        (label_rule("train:{sender}", Form.DIGEST),),
        max_payload=SMALL,
    ),
    Rule(
        Step.MODEL_CARD,
        Role.MODEL_CREATOR,
        Role.DEPLOYER,
        (
            label_rule("weights:{sender}", Form.DIGEST),
            label_rule("model_card:{sender}", Form.PUBLIC),
        ),
        max_payload=SMALL,
    ),
    Rule(
        Step.CATALOG_REQUEST,
        Role.END_USER,
        Role.EXTERNAL_DATABASE,
        (label_rule("catalog:{receiver}", Form.PUBLIC),),
        max_payload=SMALL,
    ),
    Rule(
        Step.CATALOG,
        Role.EXTERNAL_DATABASE,
        Role.END_USER,
        (label_rule("catalog:{sender}", Form.PUBLIC),),
        reply_to=(Step.CATALOG_REQUEST,),
        max_payload=SMALL,
    ),
    Rule(
        Step.SEALED_PROMPT,
        Role.END_USER,
        Role.DEPLOYER,
        (label_rule("prompt:{sender}", Form.CIPHERTEXT, Form.PLAINTEXT),),
    ),
    Rule(
        Step.PROMPT_RECEIPT,
        Role.DEPLOYER,
        Role.END_USER,
        (label_rule("prompt:{receiver}", Form.DIGEST),),
        reply_to=(Step.SEALED_PROMPT,),
        max_payload=SMALL,
    ),
)
