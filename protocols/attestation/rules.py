"""Which attestation steps may cross between which roles, with which labels.
Statements reveal their subjects only as digests (a dataset's Merkle root, a
model's weights root, a receipt's input and output hashes); heads, proofs,
the scenario's test prompts and their answers are public."""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "attestation"
SUBMITTERS = (Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, Role.DEPLOYER)

# what each submitter's statements are about
DATASET_LABEL = label_rule("train:{sender}", Form.DIGEST)
MODEL_LABEL = label_rule("weights:{sender}", Form.DIGEST)
RECEIPT_LABELS = (label_rule("prompt:*", Form.DIGEST), label_rule("output:*", Form.DIGEST))
STATEMENT_LABELS = {
    Role.DATA_CONTRIBUTOR: (DATASET_LABEL,),
    Role.MODEL_CREATOR: (MODEL_LABEL,),
    Role.DEPLOYER: RECEIPT_LABELS,
}

RULES = (
    # statements and receipts go to the ledger; it answers with a head and proofs
    *(Rule("submit", role, Role.LEDGER, STATEMENT_LABELS[role]) for role in SUBMITTERS),
    *(
        Rule("head_request", role, Role.LEDGER, (label_rule("ledger:{receiver}", Form.PUBLIC),))
        for role in SUBMITTERS
    ),
    *(
        Rule(
            "logged",
            Role.LEDGER,
            role,
            (label_rule("ledger:{sender}", Form.PUBLIC),),
            reply_to=("submit", "head_request"),
        )
        for role in SUBMITTERS
    ),
    # a contributor shows its logged statement (and exclusion proofs) to the creator
    Rule("dataset_attestation", Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, (DATASET_LABEL,)),
    # the creator shows its logged model statement to deployers and end users
    Rule("model_attestation", Role.MODEL_CREATOR, Role.DEPLOYER, (MODEL_LABEL,)),
    Rule("model_attestation", Role.MODEL_CREATOR, Role.END_USER, (MODEL_LABEL,)),
    # inference with a receipt; this protocol's prompts are public test prompts
    Rule(
        "inference_request",
        Role.END_USER,
        Role.DEPLOYER,
        (label_rule("prompt:{sender}", Form.PUBLIC),),
    ),
    Rule(
        "inference_response",
        Role.DEPLOYER,
        Role.END_USER,
        (
            label_rule("output:{receiver}", Form.PUBLIC),
            label_rule("prompt:{receiver}", Form.DIGEST),
        ),
        reply_to=("inference_request",),
    ),
)
