"""What each attestation step carries (parties.message), and the shapes the
serving protocols (tee, mpc) share with it: a signed statement (an in-toto
statement in a DSSE envelope, evidence.statements), what a submitter sends
the ledger and the ledger's answer (ledger.py, ledger_server.py). Whether a
statement's signature verifies, what it says, and whether a head and its
proofs hold is the role's to judge."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from evidence.statements import PAYLOAD_TYPE
from parties.message import Exactly, Fields, Hex, Message, hex_bytes, json_message
from protocols.attestation.ledger import MAX_CHECKPOINT
from protocols.attestation.rules import Step

# a statement's payload: non-empty standard base64, padded (securesystemslib's b64enc)
Base64 = Annotated[
    str,
    StringConstraints(
        pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$",
        max_length=1 << 20,
    ),
]
# an Ed25519 signature (64 bytes) in standard base64
Ed25519Base64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]
# the longest Merkle proof of a tree of up to 2**64 leaves, with room to spare
MAX_PROOF = 128
# a dataset's sort key is at most 65535 bytes (dataset.leaf_for), so fewer characters
Key = Annotated[str, StringConstraints(max_length=0xFFFF)]
MAX_EXCLUSIONS = 1000  # prefixes a contributor proves absent
Text = Annotated[str, StringConstraints(max_length=1 << 16)]  # a prompt, an answer


class DsseSignature(Fields):
    keyid: hex_bytes(32)  # type: ignore[valid-type]  # securesystemslib: SHA-256 of the key
    sig: Ed25519Base64


class SignedStatement(Fields):
    """A DSSE envelope as securesystemslib writes it, signed once (Ed25519)."""

    payload: Base64
    payloadType: Exactly(PAYLOAD_TYPE)  # type: ignore[valid-type]  # noqa: N815 (DSSE's name)
    signatures: list[DsseSignature] = Field(min_length=1, max_length=1)


class Submission(Fields):
    """A statement to log, and the size of the last head its submitter saw."""

    statement: SignedStatement
    since: int = Field(ge=0)


class HeadRequest(Fields):
    since: int = Field(ge=0)


class TreeHead(Fields):
    """A C2SP tlog-checkpoint in a signed note (protocols/attestation/ledger.py)."""

    checkpoint: str = Field(max_length=MAX_CHECKPOINT)


class LedgerAnswer(Fields):
    """A signed head, the inclusion proof of the entry just logged (no
    index and no proof when answering a head request) and the consistency
    proof from the asker's last seen size."""

    index: Annotated[int, Field(ge=0)] | None
    since: int = Field(ge=0)
    head: TreeHead
    inclusion: list[hex_bytes(32)] = Field(max_length=MAX_PROOF)  # type: ignore[valid-type]
    consistency: list[hex_bytes(32)] = Field(max_length=MAX_PROOF)  # type: ignore[valid-type]


class Node(Fields):
    """A sibling on a dataset proof's path: its hash and key range (evidence.ordered)."""

    hash: hex_bytes(32)  # type: ignore[valid-type]
    low: Key
    high: Key


class MembershipProof(Fields):
    index: int = Field(ge=0)
    size: int = Field(ge=1)
    leaf: Hex  # u16 length, the key, the record's SHA-256
    path: list[Node] = Field(max_length=MAX_PROOF)


class ExclusionProof(Fields):
    """The neighbours bracketing a prefix: none before it at the start of
    the keys, none after it at their end (neither for an empty dataset)."""

    prefix: Key
    before: MembershipProof | None
    after: MembershipProof | None


class ModelAttestation(Fields):
    statement: SignedStatement
    logged: LedgerAnswer


class DatasetAttestation(Fields):
    statement: SignedStatement
    logged: LedgerAnswer
    exclusions: list[ExclusionProof] = Field(max_length=MAX_EXCLUSIONS)


class InferenceRequest(Fields):
    prompt: Text
    nonce: hex_bytes(16)  # type: ignore[valid-type]
    input_sha256: hex_bytes(32)  # type: ignore[valid-type]  # salted commitment to the prompt


class InferenceResponse(Fields):
    output: Text
    output_salt: hex_bytes(32)  # type: ignore[valid-type]
    receipt: SignedStatement


SUBMIT_MESSAGE = json_message(Submission)
LOGGED_MESSAGE = json_message(LedgerAnswer)
# the ledger's steps, which every protocol logging with it shares
LEDGER_MESSAGES: dict[str, Message] = {Step.SUBMIT: SUBMIT_MESSAGE, Step.LOGGED: LOGGED_MESSAGE}

MESSAGES: dict[str, Message] = {
    **LEDGER_MESSAGES,
    Step.HEAD_REQUEST: json_message(HeadRequest),
    Step.DATASET_ATTESTATION: json_message(DatasetAttestation),
    Step.MODEL_ATTESTATION: json_message(ModelAttestation),
    Step.INFERENCE_REQUEST: json_message(InferenceRequest),
    Step.INFERENCE_RESPONSE: json_message(InferenceResponse),
}
