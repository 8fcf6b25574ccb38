"""Which tee steps may cross between which roles, with which labels.

The deployer hosts the enclave and relays between it and the end user:
nonces and evidence (public) one way and the other, prompts and answers as
ciphertext only. The end user asks the verifier to appraise evidence; the
model creator gives the verifier signed reference values and the deployer
its model. `plain_prompt` is the plaintext-serving baseline that the
benchmark measures against; the tee scenario's guarantees refuse it.
"""

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "tee"

CREATOR, DEPLOYER, ENCLAVE = Role.MODEL_CREATOR, Role.DEPLOYER, Role.ENCLAVE
USER, VERIFIER = Role.END_USER, Role.VERIFIER

RULES = (
    Rule("reference_values", CREATOR, VERIFIER, (label_rule("reference:{sender}", Form.PUBLIC),)),
    Rule("model_release", CREATOR, DEPLOYER, (label_rule("weights:{sender}", Form.PLAINTEXT),)),
    Rule(
        "enclave_load",
        DEPLOYER,
        ENCLAVE,
        (
            label_rule("weights:*", Form.PLAINTEXT),
            label_rule("enclave_image:{sender}", Form.PUBLIC),
        ),
    ),
    Rule("attestation_request", USER, DEPLOYER, (label_rule("nonce:{sender}", Form.PUBLIC),)),
    Rule("evidence_request", DEPLOYER, ENCLAVE, (label_rule("nonce:*", Form.PUBLIC),)),
    Rule(
        "evidence",
        ENCLAVE,
        DEPLOYER,
        (label_rule("evidence:{sender}", Form.PUBLIC),),
        reply_to=("evidence_request",),
    ),
    Rule(
        "evidence",
        DEPLOYER,
        USER,
        (label_rule("evidence:*", Form.PUBLIC),),
        reply_to=("attestation_request",),
    ),
    Rule(
        "appraisal_request",
        USER,
        VERIFIER,
        (label_rule("evidence:*", Form.PUBLIC), label_rule("nonce:{sender}", Form.PUBLIC)),
    ),
    Rule(
        "attestation_result",
        VERIFIER,
        USER,
        (label_rule("attestation_result:{sender}", Form.PUBLIC),),
        reply_to=("appraisal_request",),
    ),
    Rule("sealed_prompt", USER, DEPLOYER, (label_rule("prompt:{sender}", Form.CIPHERTEXT),)),
    Rule("enclave_prompt", DEPLOYER, ENCLAVE, (label_rule("prompt:*", Form.CIPHERTEXT),)),
    Rule(
        "enclave_answer",
        ENCLAVE,
        DEPLOYER,
        (label_rule("output:*", Form.CIPHERTEXT),),
        reply_to=("enclave_prompt",),
    ),
    Rule(
        "sealed_answer",
        DEPLOYER,
        USER,
        (label_rule("output:{receiver}", Form.CIPHERTEXT),),
        reply_to=("sealed_prompt",),
    ),
    Rule("plain_prompt", USER, DEPLOYER, (label_rule("prompt:{sender}", Form.PLAINTEXT),)),
    Rule(
        "plain_answer",
        DEPLOYER,
        USER,
        (label_rule("output:{receiver}", Form.PLAINTEXT),),
        reply_to=("plain_prompt",),
    ),
)
