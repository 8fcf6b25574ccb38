"""What each walkthrough step carries (parties.message)."""

from typing import Annotated

from pydantic import Field, StringConstraints

from parties.message import Empty, Fields, Message, Name, hex_bytes, json_message, opaque
from protocols.walkthrough.rules import Step

Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class DatasetCommitment(Fields):
    records: int = Field(ge=0)
    sha256: hex_bytes(32)  # type: ignore[valid-type]


class ModelCard(Fields):
    model: Name
    trained_on: list[Name] = Field(max_length=1000)


class PublishedCard(Fields):
    card: ModelCard
    weights_sha256: hex_bytes(32)  # type: ignore[valid-type]


class Catalog(Fields):
    titles: list[Title] = Field(max_length=1000)


MESSAGES: dict[str, Message] = {
    Step.DATASET_COMMITMENT: json_message(DatasetCommitment),
    Step.MODEL_CARD: json_message(PublishedCard),
    Step.CATALOG_REQUEST: json_message(Empty),
    Step.CATALOG: json_message(Catalog),
    # a nonce and an AES-GCM ciphertext only its recipient can open
    Step.SEALED_PROMPT: opaque(min_bytes=12 + 16),
    Step.PROMPT_RECEIPT: opaque(32, min_bytes=32),  # the SHA-256 of the sealed prompt
}
