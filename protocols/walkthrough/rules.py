"""Which walkthrough steps may cross between which roles, with which labels."""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "walkthrough"
SMALL = 64 << 10  # commitments, cards, catalogues and receipts: a few hundred bytes

RULES = (
    Rule(
        "dataset_commitment",
        Role.DATA_CONTRIBUTOR,
        Role.MODEL_CREATOR,
        (label_rule("train:{sender}", Form.DIGEST),),
        max_payload=SMALL,
    ),
    Rule(
        "model_card",
        Role.MODEL_CREATOR,
        Role.DEPLOYER,
        (
            label_rule("weights:{sender}", Form.DIGEST),
            label_rule("model_card:{sender}", Form.PUBLIC),
        ),
        max_payload=SMALL,
    ),
    Rule(
        "catalog_request",
        Role.END_USER,
        Role.EXTERNAL_DATABASE,
        (label_rule("catalog:{receiver}", Form.PUBLIC),),
        max_payload=SMALL,
    ),
    Rule(
        "catalog",
        Role.EXTERNAL_DATABASE,
        Role.END_USER,
        (label_rule("catalog:{sender}", Form.PUBLIC),),
        reply_to=("catalog_request",),
        max_payload=SMALL,
    ),
    Rule(
        "sealed_prompt",
        Role.END_USER,
        Role.DEPLOYER,
        (label_rule("prompt:{sender}", Form.CIPHERTEXT, Form.PLAINTEXT),),
    ),
    Rule(
        "prompt_receipt",
        Role.DEPLOYER,
        Role.END_USER,
        (label_rule("prompt:{receiver}", Form.DIGEST),),
        reply_to=("sealed_prompt",),
        max_payload=SMALL,
    ),
)
