"""Fixed payloads of each PIR step that the protocol says its receiver must
refuse, and honest ones (tests/payload_examples.py explains why they are
written by hand; tests/test_negative_examples.py checks them). What each
message is: catalog.py (the catalog's header: a scheme, a record count,
record size holding a 4-byte length and an 8-byte tag in a multiple of 8
bytes, cluster boundaries), client.py and server.py (a batch of equal-size
queries and answers behind a 16-byte nonce; a rank request under the
SHA-256 of the evaluation keys; chunks of CKKS ciphertexts), he.py (a
public CKKS context of 64 KiB to 16 MiB)."""

from typing import Any

from tests.payload_examples import Examples, as_json, changed, framed, hexed, without

H16, H32 = hexed(16), hexed(32)
VERSION = hexed(32, 0x5E)  # the SHA-256 of the records' digests and sizes (records.version_of)

CATALOG = {
    "scheme": "xor",
    "count": 6,
    "record_bytes": 512,
    "starts": [0, 3, 6],
    "batch": 3,
    "version": VERSION,
}
SIMPLEPIR = changed(CATALOG, scheme="simplepir", seed=H16, bits=9, digits=456)
CATALOG_BODY = bytes(2 * 384 * 4 + 6 * 32)  # the centroids, then each record's digest
QUERY = {"version": VERSION, "size": 64, "nonce": H16}
QUERIES = bytes(3 * 64)  # a batch of 3 queries of 64 bytes
ANSWERS = bytes(3 * 512)
RANK = {"version": VERSION, "nonce": H16, "keys_sha256": H32}
VECTOR = bytes(200_000)  # a serialized CKKS vector
CHUNKS = {"chunks": [300_000, 300_000]}


def _catalog(**fields: Any) -> bytes:
    return framed(changed(CATALOG, **fields), CATALOG_BODY)


def _query(**fields: Any) -> bytes:
    return framed(changed(QUERY, **fields), QUERIES)


def _rank(**fields: Any) -> bytes:
    return framed(changed(RANK, **fields), VECTOR)


EXAMPLES: dict[str, Examples] = {
    "catalog_request": Examples(
        valid={"nothing": b"{}"},
        refused={
            "the cluster wanted (a request says nothing)": as_json({"cluster": 3}),
            "a question": as_json({"question": "asthma"}),
            "a list": as_json([]),
            "no payload": b"",
        },
    ),
    "catalog": Examples(
        valid={
            "an XOR catalog": framed(CATALOG, CATALOG_BODY),
            "a SimplePIR catalog": framed(SIMPLEPIR, CATALOG_BODY + bytes(456 * 1024 * 4)),
        },
        refused={
            "a scheme the client does not run": _catalog(scheme="plaintext"),
            "no record": _catalog(count=0),
            "the record count as a string": _catalog(count="6"),
            "a record count of true": _catalog(count=True),
            "records too small for a length and a tag": _catalog(record_bytes=8),
            "records not a multiple of 8 bytes": _catalog(record_bytes=500),
            "one boundary: no cluster": _catalog(starts=[0]),
            "the boundaries as a string": _catalog(starts="0,3,6"),
            "a boundary as a string": _catalog(starts=[0, "3", 6]),
            "the batch as a string": _catalog(batch="3"),
            "a fractional batch": _catalog(batch=3.0),
            "the version as a number": _catalog(version=7),
            "no version": framed(without(CATALOG, "version"), CATALOG_BODY),
            "no scheme": framed(without(CATALOG, "scheme"), CATALOG_BODY),
            "the plaintext modulus as a string": framed(changed(SIMPLEPIR, bits="9"), CATALOG_BODY),
            "a field the catalog does not have": _catalog(queries_seen=12),
            "no body": framed(CATALOG),
        },
        left_to_role={
            "a batch of 0 (the client checks it is the largest cluster)": _catalog(batch=0),
            "a negative boundary (the client checks they span the records)": _catalog(
                starts=[-3, 6]
            ),
            "an empty version (the client recomputes it)": _catalog(version=""),
        },
    ),
    "pir_query": Examples(
        valid={"a batch of queries": framed(QUERY, QUERIES)},
        refused={
            "queries of 0 bytes": _query(size=0),
            "queries of a negative size": _query(size=-64),
            "the size as a string": _query(size="64"),
            "a fractional size": _query(size=64.5),
            "a nonce of 8 bytes": _query(nonce=hexed(8)),
            "a nonce of 32 bytes": _query(nonce=H32),
            "a nonce that is not hex": _query(nonce="n" * 32),
            "no nonce": framed(without(QUERY, "nonce"), QUERIES),
            "no catalog version": framed(without(QUERY, "version"), QUERIES),
            "an empty catalog version": _query(version=""),
            "a catalog version of 200 characters": _query(version="v" * 200),
            "the cluster wanted, in the clear": _query(cluster=3),
            "the record wanted, in the clear": _query(index=4),
            "no queries": framed(QUERY),
        },
    ),
    "pir_answer": Examples(
        valid={"a batch of answers": framed({"size": 512}, ANSWERS)},
        refused={
            "answers of 0 bytes": framed({"size": 0}, ANSWERS),
            "the size as a string": framed({"size": "512"}, ANSWERS),
            "no size": framed({}, ANSWERS),
            "the record's index beside the answers": framed({"size": 512, "index": 4}, ANSWERS),
            "no answers": framed({"size": 512}),
        },
    ),
    "evaluation_keys": Examples(
        valid={"a public context with its Galois keys": bytes(6 << 20)},
        refused={
            "nothing": b"",
            "a context of 1 KiB (the public key alone is about 130 KB)": bytes(1 << 10),
            "a context just under 64 KiB": bytes((64 << 10) - 1),
            "a context over 16 MiB": bytes((16 << 20) + 1),
        },
    ),
    "rank_request": Examples(
        valid={"an encrypted question": framed(RANK, VECTOR)},
        refused={
            "a keys digest one byte short": _rank(keys_sha256=hexed(31)),
            "a keys digest that is not hex": _rank(keys_sha256="k" * 64),
            "no keys digest": framed(without(RANK, "keys_sha256"), VECTOR),
            "a nonce of 32 bytes": _rank(nonce=H32),
            "no nonce": framed(without(RANK, "nonce"), VECTOR),
            "no catalog version": framed(without(RANK, "version"), VECTOR),
            "the question's embedding in the clear": _rank(embedding=[0.1, 0.2]),
            "the documents wanted, in the clear": _rank(top=[1, 4]),
            "no encrypted question": framed(RANK),
        },
    ),
    "rank_answer": Examples(
        valid={"two chunks of scores": framed(CHUNKS, bytes(600_000))},
        refused={
            "no chunk": framed({"chunks": []}, bytes(600_000)),
            "a chunk of 0 bytes": framed({"chunks": [0, 600_000]}, bytes(600_000)),
            "a chunk of a negative size": framed({"chunks": [-1]}, bytes(600_000)),
            "the sizes as a string": framed({"chunks": "300000,300000"}, bytes(600_000)),
            "a size as a string": framed({"chunks": ["600000"]}, bytes(600_000)),
            "no sizes": framed({}, bytes(600_000)),
            "the scores in the clear beside them": framed(
                changed(CHUNKS, scores=[0.9, 0.1]), bytes(600_000)
            ),
            "no ciphertexts": framed(CHUNKS),
        },
    ),
}
