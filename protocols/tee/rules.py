"""Which tee steps may cross between which roles, with which labels.

The deployer hosts the enclave and relays between it and the others:
nonces and evidence (public) one way and the other, prompts and answers as
ciphertext only, and the model creator's weights as ciphertext only (key
release: sealed to the enclave's attested key). The model creator gives the
verifier and each end user signed reference values and the deployer the
root of the weights to boot the enclave with (a digest). The end user and
the model creator are both relying parties: each asks the verifier to
appraise evidence, and appraises it itself too.
With `log_receipts`, the model creator logs in the ledger which receipt
key the enclave it released the weights to holds (a digest of the weights
names the model), and the enclave logs each receipt (salted digests of the
prompt and answer) before it answers. `plain_weights` and `plain_prompt`
are the plaintext-serving baseline that the benchmark measures against; the
tee scenario's guarantees refuse them.
"""

import enum

from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role
from protocols.attestation.serving_log import serving_log_rules

NAME = "tee"

CREATOR, DEPLOYER, ENCLAVE = Role.MODEL_CREATOR, Role.DEPLOYER, Role.ENCLAVE
USER, VERIFIER, LEDGER = Role.END_USER, Role.VERIFIER, Role.LEDGER
RELYING_PARTIES = (USER, CREATOR)


class Step(enum.StrEnum):
    REFERENCE_VALUES = "reference_values"
    MODEL_ROOT = "model_root"
    ENCLAVE_LOAD = "enclave_load"
    ATTESTATION_REQUEST = "attestation_request"
    EVIDENCE_REQUEST = "evidence_request"
    EVIDENCE = "evidence"
    APPRAISAL_REQUEST = "appraisal_request"
    ATTESTATION_RESULT = "attestation_result"
    MODEL_RELEASE = "model_release"
    ENCLAVE_WEIGHTS = "enclave_weights"
    SEALED_PROMPT = "sealed_prompt"
    ENCLAVE_PROMPT = "enclave_prompt"
    ENCLAVE_ANSWER = "enclave_answer"
    SEALED_ANSWER = "sealed_answer"
    PLAIN_WEIGHTS = "plain_weights"
    PLAIN_PROMPT = "plain_prompt"
    PLAIN_ANSWER = "plain_answer"
    # the ledger's steps, named as in the attestation protocol: one log
    SUBMIT = "submit"
    LOGGED = "logged"


def _relying_party_rules(party: Role) -> tuple[Rule, ...]:
    """A relying party's attestation: a nonce to the host, evidence back,
    and the verifier's appraisal of it."""
    return (
        Rule(
            Step.ATTESTATION_REQUEST, party, DEPLOYER, (label_rule("nonce:{sender}", Form.PUBLIC),)
        ),
        Rule(
            Step.EVIDENCE,
            DEPLOYER,
            party,
            (label_rule("evidence:*", Form.PUBLIC),),
            reply_to=(Step.ATTESTATION_REQUEST,),
        ),
        Rule(
            Step.APPRAISAL_REQUEST,
            party,
            VERIFIER,
            (label_rule("evidence:*", Form.PUBLIC), label_rule("nonce:{sender}", Form.PUBLIC)),
        ),
        Rule(
            Step.ATTESTATION_RESULT,
            VERIFIER,
            party,
            (label_rule("attestation_result:{sender}", Form.PUBLIC),),
            reply_to=(Step.APPRAISAL_REQUEST,),
        ),
    )


RULES = (
    *(
        Rule(
            Step.REFERENCE_VALUES,
            CREATOR,
            appraiser,
            (label_rule("reference:{sender}", Form.PUBLIC),),
        )
        for appraiser in (VERIFIER, USER)
    ),
    Rule(Step.MODEL_ROOT, CREATOR, DEPLOYER, (label_rule("weights:{sender}", Form.DIGEST),)),
    Rule(
        Step.ENCLAVE_LOAD,
        DEPLOYER,
        ENCLAVE,
        (
            label_rule("weights:*", Form.DIGEST),
            label_rule("enclave_image:{sender}", Form.PUBLIC),
        ),
    ),
    *(rule for party in RELYING_PARTIES for rule in _relying_party_rules(party)),
    Rule(Step.EVIDENCE_REQUEST, DEPLOYER, ENCLAVE, (label_rule("nonce:*", Form.PUBLIC),)),
    Rule(
        Step.EVIDENCE,
        ENCLAVE,
        DEPLOYER,
        (label_rule("evidence:{sender}", Form.PUBLIC),),
        reply_to=(Step.EVIDENCE_REQUEST,),
    ),
    Rule(Step.MODEL_RELEASE, CREATOR, DEPLOYER, (label_rule("weights:{sender}", Form.CIPHERTEXT),)),
    Rule(Step.ENCLAVE_WEIGHTS, DEPLOYER, ENCLAVE, (label_rule("weights:*", Form.CIPHERTEXT),)),
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
    *serving_log_rules((ENCLAVE,)),
    Rule(Step.PLAIN_WEIGHTS, CREATOR, DEPLOYER, (label_rule("weights:{sender}", Form.PLAINTEXT),)),
    Rule(Step.PLAIN_PROMPT, USER, DEPLOYER, (label_rule("prompt:{sender}", Form.PLAINTEXT),)),
    Rule(
        Step.PLAIN_ANSWER,
        DEPLOYER,
        USER,
        (label_rule("output:{receiver}", Form.PLAINTEXT),),
        reply_to=(Step.PLAIN_PROMPT,),
    ),
)
