"""Which attestation steps may cross between which roles. Everything that
crosses is a statement, a proof, a head, a public prompt or an output: the
forms are public and digest only."""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "attestation"
SUBMITTERS = (Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, Role.DEPLOYER)
_PUBLIC_ATTESTATION = label_rule("attestation:{sender}", Form.PUBLIC)

RULES = (
    # statements and receipts go to the ledger; it answers with head and proofs
    *(Rule("submit", role, Role.LEDGER, (_PUBLIC_ATTESTATION,)) for role in SUBMITTERS),
    *(
        Rule("head_request", role, Role.LEDGER, (label_rule("ledger:{receiver}", Form.PUBLIC),))
        for role in SUBMITTERS
    ),
    *(
        Rule("logged", Role.LEDGER, role, (label_rule("ledger:{sender}", Form.PUBLIC),))
        for role in SUBMITTERS
    ),
    # a contributor shows its logged dataset statement (and exclusion proofs) to the creator
    Rule("dataset_attestation", Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, (_PUBLIC_ATTESTATION,)),
    # the creator shows its logged model statement to deployers and end users
    Rule("model_attestation", Role.MODEL_CREATOR, Role.DEPLOYER, (_PUBLIC_ATTESTATION,)),
    Rule("model_attestation", Role.MODEL_CREATOR, Role.END_USER, (_PUBLIC_ATTESTATION,)),
    # inference with a receipt: the scenario's prompts are public test prompts
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
        (label_rule("output:{receiver}", Form.PUBLIC), _PUBLIC_ATTESTATION),
    ),
)
