"""What each step's payload must be: its framing, the fields of its JSON
and what may follow it. A protocol declares one `Message` per step
(`Protocol.messages`); the receiving boundary refuses a payload that does
not fit as BAD_PAYLOAD, naming the field, before any role logic reads it,
and an honest sender's own boundary withholds one. The role still checks
what only it can judge (a round's number, a signature, a decryption).

The same definitions generate the property-based fuzzing of every step
(tests/test_protocol_fuzz.py)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays

from parties.errors import AirlockError
from parties.payload import split


class BadPayload(AirlockError):
    """A payload that does not fit its step's message definition."""


class Fields(BaseModel):
    """The JSON object of a message: nothing missing, nothing extra, no
    coercion ("1" is not 1), no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class Framing(enum.Enum):
    JSON = "json"  # the whole payload is one JSON object
    FRAMED = "framed"  # parties.payload.pack: a JSON object, then a body
    OPAQUE = "opaque"  # bytes only the receiving role can judge (a ciphertext)


class Body(enum.Enum):
    """What follows the JSON object of a FRAMED message."""

    NONE = "none"
    BYTES = "bytes"  # judged by the role (a ciphertext, a weights file)
    TENSORS = "tensors"  # a safetensors file; dtypes and shapes judged by the role


@dataclass(frozen=True)
class Message:
    framing: Framing
    fields: type[BaseModel] | None = None
    body: Body = Body.NONE
    # for OPAQUE: how many bytes a payload may hold
    min_bytes: int = 1
    max_bytes: int | None = None

    def check(self, payload: bytes) -> None:
        """BadPayload unless `payload` fits this definition."""
        if self.framing is Framing.OPAQUE:
            size = len(payload)
            if size < self.min_bytes:
                raise BadPayload(f"the payload holds {size} bytes, at least {self.min_bytes}")
            if self.max_bytes is not None and size > self.max_bytes:
                raise BadPayload(f"the payload holds {size} bytes, at most {self.max_bytes}")
            return
        if self.framing is Framing.JSON:
            header, body = payload, b""
        else:
            try:
                header, body = split(payload)
            except AirlockError as error:
                raise BadPayload(str(error)) from None
        if self.fields is not None:
            _validate(self.fields, header)
        if self.body is Body.NONE and body:
            raise BadPayload(f"nothing may follow the header, {len(body)} bytes do")
        if self.body is not Body.NONE and not body:
            raise BadPayload(f"the header must be followed by {self.body.value}")
        if self.body is Body.TENSORS:
            _check_tensors(body)


def _validate(fields: type[BaseModel], header: bytes) -> None:
    try:
        fields.model_validate_json(header)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the object"
        raise BadPayload(f"{where}: {first['msg']}") from None


def _check_tensors(body: bytes) -> None:
    try:
        load_arrays(body)
    except (SafetensorError, ValueError, TypeError, OSError) as error:
        raise BadPayload(f"the body is not a safetensors file ({error})") from None


def json_message(fields: type[BaseModel]) -> Message:
    return Message(Framing.JSON, fields)


def framed(fields: type[BaseModel], body: Body = Body.NONE) -> Message:
    return Message(Framing.FRAMED, fields, body)


def opaque(max_bytes: int | None = None, min_bytes: int = 1) -> Message:
    return Message(Framing.OPAQUE, min_bytes=min_bytes, max_bytes=max_bytes)


# Field types the definitions share: lowercase hex of a fixed byte length,
# and a party's name.
def hex_bytes(size: int) -> type[str]:
    return Annotated[str, StringConstraints(pattern=f"^[0-9a-f]{{{2 * size}}}$")]  # type: ignore[return-value]


def Exactly(value: str) -> type[str]:  # noqa: N802 (a type, as hex_bytes)
    """The one string `value`, as a field type."""
    return Annotated[str, StringConstraints(pattern=f"^{re.escape(value)}$")]  # type: ignore[return-value]


Hex = Annotated[str, StringConstraints(pattern="^([0-9a-f]{2})*$", max_length=1 << 20)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class Empty(Fields):
    """A message with no fields."""
