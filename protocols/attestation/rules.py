"""Which attestation steps may cross between which roles, with which labels.
Statements reveal their subjects only as digests (a dataset's Merkle root, a
model's weights root, a receipt's input and output hashes); heads, proofs,
the scenario's test prompts and their answers are public."""

from __future__ import annotations

import enum

from evidence.countersignatures import COUNTERSIGNATURE_PREDICATE
from evidence.receipts import RECEIPT_PREDICATE
from parties.labels import Form
from parties.protocol import Rule, label_rule
from parties.roles import Role

NAME = "attestation"
SUBMITTERS = (Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, Role.DEPLOYER)
# who may keep a head of the ledger and check it later: its submitters, and
# (from the receipts serving protocols log) enclaves, compute parties and end users
READERS = (*SUBMITTERS, Role.ENCLAVE, Role.COMPUTE, Role.END_USER)

# the in-toto predicate types of the statements this protocol signs
DATASET_PREDICATE = "urn:airlock:predicate:dataset-commitment:v1"
MODEL_PREDICATE = "urn:airlock:predicate:model-commitment:v1"
# how a trained model was built (protocols/attestation/provenance.py)
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
# what each submitter signs, so what the ledger (and verify) opens its statements as
SIGNED_BY_SENDER: dict[Role, str | tuple[str, ...]] = {
    # its dataset, and its countersignature of the final model it was sent
    Role.DATA_CONTRIBUTOR: (DATASET_PREDICATE, COUNTERSIGNATURE_PREDICATE),
    Role.MODEL_CREATOR: (MODEL_PREDICATE, SLSA_PROVENANCE),
    Role.DEPLOYER: RECEIPT_PREDICATE,
}


class Step(enum.StrEnum):
    SUBMIT = "submit"
    HEAD_REQUEST = "head_request"
    LOGGED = "logged"
    DATASET_ATTESTATION = "dataset_attestation"
    MODEL_ATTESTATION = "model_attestation"
    INFERENCE_REQUEST = "inference_request"
    INFERENCE_RESPONSE = "inference_response"


# what each submitter's statements are about
DATASET_LABEL = label_rule("train:{sender}", Form.DIGEST)
MODEL_LABEL = label_rule("weights:{sender}", Form.DIGEST)
RECEIPT_LABELS = (label_rule("prompt:*", Form.DIGEST), label_rule("output:*", Form.DIGEST))
STATEMENT_LABELS = {
    # a countersignature names the creator's weights by their root
    Role.DATA_CONTRIBUTOR: (DATASET_LABEL, label_rule("weights:*", Form.DIGEST)),
    Role.MODEL_CREATOR: (MODEL_LABEL,),
    Role.DEPLOYER: RECEIPT_LABELS,
}

RULES = (
    # statements and receipts go to the ledger; it answers with a head and proofs
    *(Rule(Step.SUBMIT, role, Role.LEDGER, STATEMENT_LABELS[role]) for role in SUBMITTERS),
    *(
        Rule(
            Step.HEAD_REQUEST,
            role,
            Role.LEDGER,
            (label_rule("ledger:{receiver}", Form.PUBLIC),),
        )
        for role in READERS
    ),
    *(
        Rule(
            Step.LOGGED,
            Role.LEDGER,
            role,
            (label_rule("ledger:{sender}", Form.PUBLIC),),
            reply_to=(Step.SUBMIT, Step.HEAD_REQUEST),
        )
        for role in READERS
    ),
    # a contributor shows its logged statement (and exclusion proofs) to the creator
    Rule(Step.DATASET_ATTESTATION, Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, (DATASET_LABEL,)),
    # the creator shows its logged model statement to deployers and end users
    Rule(Step.MODEL_ATTESTATION, Role.MODEL_CREATOR, Role.DEPLOYER, (MODEL_LABEL,)),
    Rule(Step.MODEL_ATTESTATION, Role.MODEL_CREATOR, Role.END_USER, (MODEL_LABEL,)),
    # inference with a receipt; this protocol's prompts are public test prompts
    Rule(
        Step.INFERENCE_REQUEST,
        Role.END_USER,
        Role.DEPLOYER,
        (label_rule("prompt:{sender}", Form.PUBLIC),),
    ),
    Rule(
        Step.INFERENCE_RESPONSE,
        Role.DEPLOYER,
        Role.END_USER,
        (
            label_rule("output:{receiver}", Form.PUBLIC),
            label_rule("prompt:{receiver}", Form.DIGEST),
        ),
        reply_to=(Step.INFERENCE_REQUEST,),
    ),
)
