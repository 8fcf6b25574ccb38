"""What each PIR step carries (parties.message)."""

from typing import Annotated

from pydantic import Field, StringConstraints

from parties.message import Body, Empty, Fields, Message, framed, hex_bytes, json_message
from protocols.pir.catalog import Declared
from protocols.pir.rules import Step

Version = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class Query(Fields):
    version: Version  # of the catalog the queries were made for
    size: int = Field(ge=1)  # bytes per query
    nonce: hex_bytes(16)  # type: ignore[valid-type]


class Answer(Fields):
    size: int = Field(ge=1)  # bytes per answer


MESSAGES: dict[str, Message] = {
    Step.CATALOG_REQUEST: json_message(Empty),
    # centroids, record digests and (SimplePIR) the hint
    Step.CATALOG: framed(Declared, Body.BYTES),
    Step.PIR_QUERY: framed(Query, Body.BYTES),  # a batch of equal-size queries
    Step.PIR_ANSWER: framed(Answer, Body.BYTES),
}
