"""What each toy step carries (parties.message): the boundary refuses
anything else before a handler reads it."""

from pydantic import Field

from parties.message import Fields, Message, json_message
from tests.toy.rules import Step


class Count(Fields):
    count: int = Field(ge=0)


class Total(Fields):
    value: int = Field(ge=0)
    contributors: int = Field(ge=0)


TALLY_MESSAGES: dict[str, Message] = {Step.COUNT: json_message(Count)}
ANNOUNCE_MESSAGES: dict[str, Message] = {Step.TOTAL: json_message(Total)}
