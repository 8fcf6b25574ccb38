"""Which tee steps may cross between which roles, with which labels.

The deployer hosts the enclave and relays between it and the end user:
nonces and evidence (public) one way and the other, prompts and answers as
ciphertext only. The end user asks the verifier to appraise evidence; the
model creator gives the verifier signed reference values and the deployer
its model. `plain_prompt` is the plaintext-serving baseline that the
benchmark measures against; the tee scenario's guarantees refuse it.
"""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "tee"

CREATOR, DEPLOYER, ENCLAVE = Role.MODEL_CREATOR, Role.DEPLOYER, Role.ENCLAVE
USER, VERIFIER = Role.END_USER, Role.VERIFIER


class Step(enum.StrEnum):
    REFERENCE_VALUES = "reference_values"
    MODEL_RELEASE = "model_release"
    ENCLAVE_LOAD = "enclave_load"
    ATTESTATION_REQUEST = "attestation_request"
    EVIDENCE_REQUEST = "evidence_request"
    EVIDENCE = "evidence"
    APPRAISAL_REQUEST = "appraisal_request"
    ATTESTATION_RESULT = "attestation_result"
    SEALED_PROMPT = "sealed_prompt"
    ENCLAVE_PROMPT = "enclave_prompt"
    ENCLAVE_ANSWER = "enclave_answer"
    SEALED_ANSWER = "sealed_answer"
    PLAIN_PROMPT = "plain_prompt"
    PLAIN_ANSWER = "plain_answer"


RULES = (
    Rule(
        Step.REFERENCE_VALUES, CREATOR, VERIFIER, (label_rule("reference:{sender}", Form.PUBLIC),)
    ),
    Rule(Step.MODEL_RELEASE, CREATOR, DEPLOYER, (label_rule("weights:{sender}", Form.PLAINTEXT),)),
    Rule(
        Step.ENCLAVE_LOAD,
        DEPLOYER,
        ENCLAVE,
        (
            label_rule("weights:*", Form.PLAINTEXT),
            label_rule("enclave_image:{sender}", Form.PUBLIC),
        ),
    ),
    Rule(Step.ATTESTATION_REQUEST, USER, DEPLOYER, (label_rule("nonce:{sender}", Form.PUBLIC),)),
    Rule(Step.EVIDENCE_REQUEST, DEPLOYER, ENCLAVE, (label_rule("nonce:*", Form.PUBLIC),)),
    Rule(
        Step.EVIDENCE,
        ENCLAVE,
        DEPLOYER,
        (label_rule("evidence:{sender}", Form.PUBLIC),),
        reply_to=(Step.EVIDENCE_REQUEST,),
    ),
    Rule(
        Step.EVIDENCE,
        DEPLOYER,
        USER,
        (label_rule("evidence:*", Form.PUBLIC),),
        reply_to=(Step.ATTESTATION_REQUEST,),
    ),
    Rule(
        Step.APPRAISAL_REQUEST,
        USER,
        VERIFIER,
        (label_rule("evidence:*", Form.PUBLIC), label_rule("nonce:{sender}", Form.PUBLIC)),
    ),
    Rule(
        Step.ATTESTATION_RESULT,
        VERIFIER,
        USER,
        (label_rule("attestation_result:{sender}", Form.PUBLIC),),
        reply_to=(Step.APPRAISAL_REQUEST,),
    ),
    Rule(Step.SEALED_PROMPT, USER, DEPLOYER, (label_rule("prompt:{sender}", Form.CIPHERTEXT),)),
    Rule(Step.ENCLAVE_PROMPT, DEPLOYER, ENCLAVE, (label_rule("prompt:*", Form.CIPHERTEXT),)),
    Rule(
        Step.ENCLAVE_ANSWER,
        ENCLAVE,
        DEPLOYER,
        (label_rule("output:*", Form.CIPHERTEXT),),
        reply_to=(Step.ENCLAVE_PROMPT,),
    ),
    Rule(
        Step.SEALED_ANSWER,
        DEPLOYER,
        USER,
        (label_rule("output:{receiver}", Form.CIPHERTEXT),),
        reply_to=(Step.SEALED_PROMPT,),
    ),
    Rule(Step.PLAIN_PROMPT, USER, DEPLOYER, (label_rule("prompt:{sender}", Form.PLAINTEXT),)),
    Rule(
        Step.PLAIN_ANSWER,
        DEPLOYER,
        USER,
        (label_rule("output:{receiver}", Form.PLAINTEXT),),
        reply_to=(Step.PLAIN_PROMPT,),
    ),
)
