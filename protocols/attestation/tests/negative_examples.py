"""Fixed payloads of each attestation step that the protocol says its
receiver must refuse, and honest ones (tests/payload_examples.py explains
why they are written by hand; tests/test_negative_examples.py checks them).

The signed statement (an in-toto statement in a DSSE envelope, signed once
with the sender's Ed25519 key) and the ledger's answer are shared with the
serving protocols (tee, mpc) and the federated countersignature: their
tables reuse STATEMENT_REFUSED and LEDGER_ANSWER_REFUSED from here."""

from __future__ import annotations

from typing import Any

from tests.payload_examples import Examples, as_json, b64, changed, hexed, without

H16, H32, H64 = hexed(16), hexed(32), hexed(64)

# -- a signed statement (evidence/statements.py) --------------------------------------------

IN_TOTO = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "hospital_1", "digest": {"sha256": H32}}],
    "predicateType": "urn:airlock:predicate:dataset-commitment:v1",
    "predicate": {"records": 20},
}
SIGNATURE = {"keyid": H32, "sig": b64(bytes(range(64)))}  # SHA-256 of the key; Ed25519
STATEMENT: dict[str, Any] = {
    "payload": b64(as_json(IN_TOTO)),
    "payloadType": "application/vnd.in-toto+json",
    "signatures": [SIGNATURE],
}
STATEMENT_REFUSED: dict[str, Any] = {
    "an Ed25519 signature one byte short": changed(
        STATEMENT, signatures=[changed(SIGNATURE, sig=b64(bytes(63)))]
    ),
    "an Ed25519 signature one byte long": changed(
        STATEMENT, signatures=[changed(SIGNATURE, sig=b64(bytes(65)))]
    ),
    "the signature in hex, not base64": changed(
        STATEMENT, signatures=[changed(SIGNATURE, sig=H64)]
    ),
    "the signature empty": changed(STATEMENT, signatures=[changed(SIGNATURE, sig="")]),
    "a key id that is not a SHA-256": changed(
        STATEMENT, signatures=[changed(SIGNATURE, keyid=hexed(20))]
    ),
    "the signature without its key id": changed(
        STATEMENT, signatures=[without(SIGNATURE, "keyid")]
    ),
    "no signature": changed(STATEMENT, signatures=[]),
    "two signatures (the sender signs once)": changed(STATEMENT, signatures=[SIGNATURE] * 2),
    "the signature a string, not a list": changed(STATEMENT, signatures=SIGNATURE["sig"]),
    "a payload type other than in-toto's": changed(STATEMENT, payloadType="application/json"),
    "the statement in the clear, not base64": changed(STATEMENT, payload=as_json(IN_TOTO).decode()),
    "an empty payload": changed(STATEMENT, payload=""),
    "no payload": without(STATEMENT, "payload"),
    "a field DSSE does not have": changed(STATEMENT, signed_by="hospital_1"),
}

# -- a ledger's answer (protocols/attestation/ledger.py) ------------------------------------

CHECKPOINT = (
    f"airlock/ledger/ledger\n3\n{b64(bytes(32))}\n\n\u2014 airlock/ledger/ledger {b64(bytes(68))}\n"
)
HEAD = {"checkpoint": CHECKPOINT}
LEDGER_ANSWER: dict[str, Any] = {
    "index": 2,
    "since": 1,
    "head": HEAD,
    "inclusion": [H32, hexed(32, 0x01)],
    "consistency": [hexed(32, 0x02)],
}
HEAD_ANSWER = changed(LEDGER_ANSWER, index=None, inclusion=[])  # to a head request
LEDGER_ANSWER_REFUSED: dict[str, Any] = {
    "a proof hash one byte short": changed(LEDGER_ANSWER, inclusion=[hexed(31)]),
    "a proof hash in base64": changed(LEDGER_ANSWER, consistency=[b64(bytes(32))]),
    "the proof one string, not a list of hashes": changed(LEDGER_ANSWER, inclusion=H32 + H32),
    "a proof longer than any tree is deep": changed(LEDGER_ANSWER, inclusion=[H32] * 200),
    "a negative index": changed(LEDGER_ANSWER, index=-1),
    "the index as a string": changed(LEDGER_ANSWER, index="2"),
    "a negative size seen": changed(LEDGER_ANSWER, since=-1),
    "no head": without(LEDGER_ANSWER, "head"),
    "the head as a bare string": changed(LEDGER_ANSWER, head=CHECKPOINT),
    "a checkpoint of 4 KiB": changed(LEDGER_ANSWER, head={"checkpoint": "a" * 4096}),
    "a head with a field besides its checkpoint": changed(
        LEDGER_ANSWER, head=changed(HEAD, size=3)
    ),
    "no consistency proof": without(LEDGER_ANSWER, "consistency"),
    "no index (null is said, not left out)": without(LEDGER_ANSWER, "index"),
    "a field the ledger does not send": changed(LEDGER_ANSWER, entries=["..."]),
}


def refused_json(table: dict[str, Any]) -> dict[str, bytes]:
    return {why: as_json(value) for why, value in table.items()}


# -- each step --------------------------------------------------------------------------------

SUBMISSION = {"statement": STATEMENT, "since": 0}
SUBMIT = Examples(
    valid={"a statement and the last size seen": as_json(SUBMISSION)},
    refused={
        **{
            f"a statement with {why}": as_json(changed(SUBMISSION, statement=bad))
            for why, bad in STATEMENT_REFUSED.items()
        },
        "no statement": as_json(without(SUBMISSION, "statement")),
        "the statement as a JSON string": as_json(
            changed(SUBMISSION, statement=as_json(STATEMENT).decode())
        ),
        "no last size seen": as_json(without(SUBMISSION, "since")),
        "a negative size seen": as_json(changed(SUBMISSION, since=-1)),
        "the size seen as a string": as_json(changed(SUBMISSION, since="0")),
        "the size seen as a float": as_json(changed(SUBMISSION, since=0.5)),
        "an index chosen by the submitter": as_json(changed(SUBMISSION, index=7)),
        "not JSON": b"statement=...",
    },
)
LOGGED = Examples(
    valid={
        "a submission's answer": as_json(LEDGER_ANSWER),
        "a head request's answer": as_json(HEAD_ANSWER),
    },
    refused={**refused_json(LEDGER_ANSWER_REFUSED), "an empty payload": b""},
)

HEAD_REQUEST = Examples(
    valid={"the last size seen": as_json({"since": 3})},
    refused={
        "a negative size": as_json({"since": -1}),
        "the size as a string": as_json({"since": "3"}),
        "the size as a float": as_json({"since": 3.5}),
        "no size": as_json({}),
        "an entry asked for by index": as_json({"since": 3, "index": 0}),
        "a list, not an object": as_json([3]),
    },
)

NODE = {"hash": H32, "low": "patient-02", "high": "patient-09"}
KEY = "patient-10"
LEAF = (len(KEY).to_bytes(2, "big") + KEY.encode() + bytes(32)).hex()  # u16, key, SHA-256
MEMBERSHIP: dict[str, Any] = {
    "index": 3,
    "size": 8,
    "leaf": LEAF,
    "path": [NODE, changed(NODE, hash=hexed(32, 0x01))],
}
EXCLUSION = {"prefix": "patient-3", "before": MEMBERSHIP, "after": None}
DATASET_ATTESTATION_VALUE = {
    "statement": STATEMENT,
    "logged": LEDGER_ANSWER,
    "exclusions": [EXCLUSION],
}


def _with_proof(**fields: Any) -> bytes:
    exclusion = changed(EXCLUSION, before=changed(MEMBERSHIP, **fields))
    return as_json(changed(DATASET_ATTESTATION_VALUE, exclusions=[exclusion]))


def _with_node(**fields: Any) -> bytes:
    return _with_proof(path=[changed(NODE, **fields)])


DATASET_ATTESTATION = Examples(
    valid={
        "with an exclusion proof": as_json(DATASET_ATTESTATION_VALUE),
        "with none": as_json(changed(DATASET_ATTESTATION_VALUE, exclusions=[])),
    },
    refused={
        "a statement with an Ed25519 signature one byte short": as_json(
            changed(
                DATASET_ATTESTATION_VALUE,
                statement=STATEMENT_REFUSED["an Ed25519 signature one byte short"],
            )
        ),
        "the ledger's answer with a proof hash one byte short": as_json(
            changed(
                DATASET_ATTESTATION_VALUE,
                logged=LEDGER_ANSWER_REFUSED["a proof hash one byte short"],
            )
        ),
        "no ledger answer": as_json(without(DATASET_ATTESTATION_VALUE, "logged")),
        "no exclusions (an empty list is said)": as_json(
            without(DATASET_ATTESTATION_VALUE, "exclusions")
        ),
        "the exclusions as an object": as_json(
            changed(DATASET_ATTESTATION_VALUE, exclusions={"patient-1": EXCLUSION})
        ),
        "an exclusion without its prefix": as_json(
            changed(DATASET_ATTESTATION_VALUE, exclusions=[without(EXCLUSION, "prefix")])
        ),
        "a prefix longer than any sort key (65535 bytes)": as_json(
            changed(DATASET_ATTESTATION_VALUE, exclusions=[changed(EXCLUSION, prefix="k" * 70000)])
        ),
        "a proof in an empty tree": _with_proof(size=0),
        "a negative leaf index": _with_proof(index=-1),
        "a leaf that is not hex": _with_proof(leaf="patient-10"),
        "a leaf of an odd number of hex digits": _with_proof(leaf=LEAF + "0"),
        "a path longer than any tree is deep": _with_proof(path=[NODE] * 200),
        "a path node's hash one byte short": _with_node(hash=hexed(31)),
        "a path node's hash in base64": _with_node(hash=b64(bytes(32))),
        "a path node without its key range": _with_proof(path=[without(NODE, "low", "high")]),
        "a path node's key as a number": _with_node(low=2),
        "the records themselves beside the proof": _with_proof(records=["note"]),
        "a field the attestation does not have": as_json(
            changed(DATASET_ATTESTATION_VALUE, records=20)
        ),
    },
)

MODEL_ATTESTATION_VALUE = {"statement": STATEMENT, "logged": LEDGER_ANSWER}
MODEL_ATTESTATION = Examples(
    valid={"a logged model statement": as_json(MODEL_ATTESTATION_VALUE)},
    refused={
        "a statement with an Ed25519 signature one byte long": as_json(
            changed(
                MODEL_ATTESTATION_VALUE,
                statement=STATEMENT_REFUSED["an Ed25519 signature one byte long"],
            )
        ),
        "an unsigned statement": as_json(
            changed(MODEL_ATTESTATION_VALUE, statement=STATEMENT_REFUSED["no signature"])
        ),
        "the ledger's answer with the index as a string": as_json(
            changed(MODEL_ATTESTATION_VALUE, logged=LEDGER_ANSWER_REFUSED["the index as a string"])
        ),
        "no ledger answer": as_json(without(MODEL_ATTESTATION_VALUE, "logged")),
        "no statement": as_json(without(MODEL_ATTESTATION_VALUE, "statement")),
        "the weights beside the statement": as_json(
            changed(MODEL_ATTESTATION_VALUE, weights=hexed(64))
        ),
    },
)

REQUEST = {"prompt": "What is asthma?", "nonce": H16, "input_sha256": H32}
INFERENCE_REQUEST = Examples(
    valid={"a test prompt and a salted commitment to it": as_json(REQUEST)},
    refused={
        "a nonce of 8 bytes": as_json(changed(REQUEST, nonce=hexed(8))),
        "a nonce of 32 bytes": as_json(changed(REQUEST, nonce=H32)),
        "a nonce that is not hex": as_json(changed(REQUEST, nonce="n" * 32)),
        "a commitment that is not a SHA-256": as_json(changed(REQUEST, input_sha256=H16)),
        "no nonce": as_json(without(REQUEST, "nonce")),
        "no commitment": as_json(without(REQUEST, "input_sha256")),
        "the prompt as a list": as_json(changed(REQUEST, prompt=["What", "is", "asthma?"])),
        "a prompt of 100 000 characters": as_json(changed(REQUEST, prompt="a" * 100_000)),
        "the salt, which never leaves the user": as_json(changed(REQUEST, salt=H32)),
    },
)

RESPONSE = {"output": "Asthma is a chronic disease.", "output_salt": H32, "receipt": STATEMENT}
INFERENCE_RESPONSE = Examples(
    valid={"an answer with its salt and receipt": as_json(RESPONSE)},
    refused={
        "a salt of 16 bytes": as_json(changed(RESPONSE, output_salt=H16)),
        "a salt that is not hex": as_json(changed(RESPONSE, output_salt="s" * 64)),
        "no receipt": as_json(without(RESPONSE, "receipt")),
        "a receipt with an Ed25519 signature one byte short": as_json(
            changed(RESPONSE, receipt=STATEMENT_REFUSED["an Ed25519 signature one byte short"])
        ),
        "an unsigned receipt": as_json(
            changed(RESPONSE, receipt=STATEMENT_REFUSED["no signature"])
        ),
        "the output as a number": as_json(changed(RESPONSE, output=42)),
        "an output of 100 000 characters": as_json(changed(RESPONSE, output="a" * 100_000)),
        "no salt": as_json(without(RESPONSE, "output_salt")),
        "a field the answer does not have": as_json(changed(RESPONSE, model="other")),
    },
)

# the ledger's two steps, as every protocol logging with it shares them
LEDGER_EXAMPLES: dict[str, Examples] = {"submit": SUBMIT, "logged": LOGGED}

EXAMPLES: dict[str, Examples] = {
    **LEDGER_EXAMPLES,
    "head_request": HEAD_REQUEST,
    "dataset_attestation": DATASET_ATTESTATION,
    "model_attestation": MODEL_ATTESTATION,
    "inference_request": INFERENCE_REQUEST,
    "inference_response": INFERENCE_RESPONSE,
}
