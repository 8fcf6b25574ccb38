"""Which walkthrough steps may cross between which roles, with which labels."""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "walkthrough"

RULES = (
    Rule(
        "dataset_commitment",
        Role.DATA_CONTRIBUTOR,
        Role.MODEL_CREATOR,
        (label_rule("train:{sender}", Form.DIGEST),),
    ),
    Rule(
        "model_card",
        Role.MODEL_CREATOR,
        Role.DEPLOYER,
        (
            label_rule("weights:{sender}", Form.DIGEST),
            label_rule("model_card:{sender}", Form.PUBLIC),
        ),
    ),
    Rule(
        "catalog_request",
        Role.END_USER,
        Role.EXTERNAL_DATABASE,
        (label_rule("catalog:{receiver}", Form.PUBLIC),),
    ),
    Rule(
        "catalog",
        Role.EXTERNAL_DATABASE,
        Role.END_USER,
        (label_rule("catalog:{sender}", Form.PUBLIC),),
        reply_to=("catalog_request",),
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
    ),
)
