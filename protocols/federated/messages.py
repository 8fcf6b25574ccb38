"""What crosses the wire in the federated protocol, for both sides: the
settings a round states, the labels and sessions of the aggregator's
requests, the arrays updates carry and how each is parsed, and asking every
contributor at once."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.message import Body, Empty, Fields, Hex, Message, Name, framed, hex_bytes, json_message
from parties.payload import unpack
from parties.protocol import PartyContext
from protocols.attestation.messages import SignedStatement
from protocols.federated.rules import Step
from protocols.federated.secagg import SecAggError, check_threshold, max_contributors

Summary = dict[str, Any]


class Settings(BaseModel):
    """The stage's params (see docs/federated.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["plain", "secagg", "secagg+dp"] = "secagg+dp"
    rounds: int = Field(default=4, ge=1, le=100)
    threshold: int = Field(default=2, ge=1)
    local_steps: int = Field(default=30, ge=1)
    batch: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    server_learning_rate: float = Field(default=1.0, gt=0)
    max_abs: float = Field(default=8.0, gt=0, le=1024)
    clip: float = Field(default=0.02, gt=0)
    noise_multiplier: float = Field(default=1.0, ge=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    exposure_samples: int = Field(default=1000, ge=10)
    # the rounds invite every contributor of the run, or only those whose
    # dataset attestation the creator accepted in an earlier stage
    contributors: Literal["all", "attested"] = "all"
    seed: int = 0

    @field_validator("threshold")
    @classmethod
    def _secure_needs_two(cls, threshold: int, info: ValidationInfo) -> int:
        # on the field, so that the scenario's error names params.threshold
        if info.data.get("mode") != "plain" and threshold < 2:
            raise ValueError("secure aggregation needs a threshold of at least 2")
        return threshold

    @property
    def secure(self) -> bool:
        return self.mode != "plain"

    @property
    def private(self) -> bool:
        return self.mode == "secagg+dp"


class Aborted(AirlockError):
    """Too few contributors remain to finish a round."""


def settings(params: Mapping[str, Any]) -> Settings:
    return Settings.model_validate({k: v for k, v in params.items() if k != "round"})


def check_contributors(s: Settings, contributors: int) -> None:
    """The run's contributors fit the settings: t-of-n sharing needs
    n/2 < t <= n (secagg.check_threshold), and the fixed-point sum must not overflow."""
    if not s.secure:
        return
    check_threshold(s.threshold, contributors)
    if contributors > max_contributors(s.max_abs):
        raise SecAggError(f"{contributors} contributors overflow the fixed-point sum")


def control(ctx: PartyContext) -> Label:
    return Label(f"federated:{ctx.name}", Form.PUBLIC)


def session(number: int) -> str:
    return f"round-{number}"


def party_names(value: object) -> frozenset[str]:
    """A list of party names from a request, or AirlockError."""
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise AirlockError("expected a list of party names")
    return frozenset(value)


# -- arrays ----------------------------------------------------------------------------


def array_bytes(name: str, array: np.ndarray) -> bytes:
    return save_arrays({name: array})


def read_array(body: bytes, name: str, dtype: type, size: int) -> np.ndarray:
    """The one array a body must hold, with the right name, dtype and size."""
    try:
        arrays = load_arrays(body)
    except (SafetensorError, ValueError, OSError):
        raise AirlockError("the update is not a safetensors array") from None
    if set(arrays) != {name}:
        raise AirlockError(f"the update must hold exactly one array named {name!r}")
    array = arrays[name]
    if array.dtype != dtype or array.shape != (size,):
        raise AirlockError(
            f"the update is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}[{size}]"
        )
    return array


def read_update(reply: Envelope, s: Settings, size: int) -> tuple[np.ndarray, int]:
    """The update in a reply and the noise variance its sender says it added
    (0 without DP), or AirlockError saying why it is refused."""
    meta, body = unpack(reply.payload)
    if s.secure:
        if reply.header.step != Step.MASKED_UPDATE:
            raise AirlockError("secure aggregation takes masked updates only")
        masked = read_array(body, "masked", np.uint32, size)
        if not s.private:
            return masked, 0
        variance = meta.get("noise_variance")
        if type(variance) is not int or variance < 0 or meta.get("clip") != s.clip:
            raise AirlockError(f"the update does not state its noise variance and clip {s.clip}")
        return masked, variance
    update = read_array(body, "update", np.float32, size)
    if not np.all(np.isfinite(update)):
        raise AirlockError("the update holds NaN or infinite values")
    if np.max(np.abs(update), initial=0.0) > s.max_abs:
        raise AirlockError(f"the update holds values beyond +-{s.max_abs}")
    return update, 0


# -- asking every contributor at once ----------------------------------------------------


def ask_all(
    ctx: PartyContext,
    names: Iterable[str],
    step: Step,
    labels: list[Label],
    payload_for: Callable[[str], bytes],
    session_id: str,
    *,
    answered: bool = True,
) -> tuple[dict[str, Envelope], dict[str, str]]:
    """Send `step` to each party at once; return the replies and, per party
    whose delivery failed (or, if `answered`, that gave no reply), why."""
    names = list(names)

    def send(name: str) -> Envelope | None | str:
        try:
            return ctx.deliver(name, step, labels, payload_for(name), session_id)
        except AirlockError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        outcomes = dict(zip(names, pool.map(send, names), strict=True))
    replies = {n: o for n, o in outcomes.items() if isinstance(o, Envelope)}
    failed = {
        n: o or "no answer"
        for n, o in outcomes.items()
        if isinstance(o, str) or (o is None and answered)
    }
    return replies, failed


# -- message definitions (parties.message) ---------------------------------------------

MAX_PARTICIPANTS = 1000  # far above any run's contributors: a bound on what is parsed


class StatedSettings(Settings):
    """The settings as a round start states them: no coercion, no NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


Context = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Names = Annotated[list[Name], Field(max_length=MAX_PARTICIPANTS)]


class RoundStart(Fields):
    round: int = Field(ge=1, le=100)
    context: Context
    settings: StatedSettings


class RoundKeys(Fields):
    party: Name
    c: hex_bytes(32)  # type: ignore[valid-type]
    s: hex_bytes(32)  # type: ignore[valid-type]
    signature: hex_bytes(64)  # type: ignore[valid-type]


class AdvertisedOrNone(RootModel[RoundKeys | Empty]):
    """A contributor's round keys; none in plain mode."""


class KeyDirectory(Fields):
    threshold: int = Field(ge=1)
    participants: Annotated[dict[Name, RoundKeys], Field(max_length=MAX_PARTICIPANTS)]


class Ciphertexts(RootModel[Annotated[dict[Name, Hex], Field(max_length=MAX_PARTICIPANTS)]]):
    """A hex ciphertext per peer."""


class UpdateRequest(Fields):
    survivors: Names
    ciphertexts: Annotated[dict[Name, Hex], Field(max_length=MAX_PARTICIPANTS)]


class NoiseStated(Fields):
    noise_variance: int = Field(ge=0)
    clip: float = Field(gt=0)


class MaskedUpdate(RootModel[NoiseStated | Empty]):
    """The noise a contributor says it added (secagg+dp); nothing otherwise."""


class Survivors(Fields):
    survivors: Names


class Signature(Fields):
    signature: hex_bytes(64)  # type: ignore[valid-type]


class UnmaskRequest(Fields):
    survivors: Names
    dropped: Names
    signatures: Annotated[dict[Name, hex_bytes(64)], Field(max_length=MAX_PARTICIPANTS)]  # type: ignore[valid-type]


Share = tuple[Annotated[int, Field(ge=1, le=MAX_PARTICIPANTS)], Hex]


class UnmaskShares(Fields):
    b: Annotated[dict[Name, Share], Field(max_length=MAX_PARTICIPANTS)]
    s: Annotated[dict[Name, Share], Field(max_length=MAX_PARTICIPANTS)]


class Rejection(Fields):
    reason: Annotated[str, StringConstraints(max_length=2000)]


MESSAGES: dict[str, Message] = {
    Step.ROUND_START: framed(RoundStart, Body.BYTES),  # the global model's weights
    Step.ROUND_KEYS: json_message(AdvertisedOrNone),
    Step.KEY_DIRECTORY: framed(KeyDirectory),
    Step.ENCRYPTED_SHARES: json_message(Ciphertexts),
    Step.UPDATE_REQUEST: framed(UpdateRequest),
    Step.MASKED_UPDATE: framed(MaskedUpdate, Body.TENSORS),
    Step.PLAIN_UPDATE: framed(Empty, Body.TENSORS),
    Step.CONSISTENCY_REQUEST: framed(Survivors),
    Step.CONSISTENCY_SIGNATURE: json_message(Signature),
    Step.UNMASK_REQUEST: framed(UnmaskRequest),
    Step.UNMASK_SHARES: json_message(UnmaskShares),
    Step.UPDATE_REJECTED: framed(Rejection),
    Step.FINAL_MODEL: framed(Empty, Body.BYTES),  # the trained weights
    Step.MODEL_COUNTERSIGNATURE: json_message(SignedStatement),  # DSSE, the contributor's
}
