"""What each PIR step carries (parties.message)."""

from typing import Annotated

from pydantic import Field, StringConstraints

from parties.message import Body, Empty, Fields, Message, framed, hex_bytes, json_message, opaque
from protocols.pir.catalog import Declared
from protocols.pir.he import MAX_KEYS_BYTES, MIN_KEYS_BYTES
from protocols.pir.rules import Step

Version = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Query(Fields):
    version: Version  # of the catalog the queries were made for
    size: int = Field(ge=1)  # bytes per query
    nonce: hex_bytes(16)  # type: ignore[valid-type]


class Answer(Fields):
    size: int = Field(ge=1)  # bytes per answer


class RankRequest(Fields):
    version: Version  # of the catalog: the documents to score
    nonce: hex_bytes(16)  # type: ignore[valid-type]
    # the SHA-256 of the evaluation keys the query was encrypted under
    keys_sha256: hex_bytes(32)  # type: ignore[valid-type]


class RankAnswer(Fields):
    # the bytes of each chunk's ciphertext of scores, in order (he.CHUNK documents each)
    chunks: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=1024)


MESSAGES: dict[str, Message] = {
    Step.CATALOG_REQUEST: json_message(Empty),
    # centroids, record digests and (SimplePIR) the hint
    Step.CATALOG: framed(Declared, Body.BYTES),
    Step.PIR_QUERY: framed(Query, Body.BYTES),  # a batch of equal-size queries
    Step.PIR_ANSWER: framed(Answer, Body.BYTES),
    # a public TenSEAL CKKS context with its Galois keys (he.py)
    Step.EVALUATION_KEYS: opaque(MAX_KEYS_BYTES, min_bytes=MIN_KEYS_BYTES),
    Step.RANK_REQUEST: framed(RankRequest, Body.BYTES),  # a serialized CKKS vector
    Step.RANK_ANSWER: framed(RankAnswer, Body.BYTES),  # the chunks' ciphertexts, end to end
}
