"""The tee stage's params (checked when the scenario is parsed)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from protocols.artifacts import ModelSource
from protocols.tee.padding import ANSWER_BUCKETS, REQUEST_BUCKETS, Bucket, check_buckets


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # at most; an answer ends earlier, at the end of its line
    max_new_tokens: int = Field(default=24, ge=1, le=256)
    baseline: bool = False  # also serve each prompt in plaintext, for the benchmark
    repeat: int = Field(default=1, ge=1, le=100)
    # the model the creator releases: the shipped checkpoint, or the one it
    # trained in an earlier stage (its store's trained model)
    model: ModelSource = "checkpoint"
    # the end user's prompts: its holdings' `prompts`, or each question it
    # retrieved guidelines for in an earlier stage, with the top one as context
    prompts: Literal["holdings", "retrieved"] = "holdings"
    # the end user sends a prompt only to an enclave serving the model whose
    # commitment it accepted in an earlier stage (the ledger logged it)
    require_commitment: bool = False
    # every receipt is logged in the ledger before its answer leaves the
    # enclave: the creator logs which receipt key its appraised enclave
    # holds, the enclave logs each receipt under it, and the end user accepts
    # an answer only with the ledger's proof that its receipt is logged
    log_receipts: bool = False
    # the sizes (bytes of plaintext, inside the seal) each sealed prompt and
    # each sealed answer is padded to: the smallest that holds it; one that
    # the largest cannot hold is refused (padding.py)
    request_buckets: tuple[Bucket, ...] = REQUEST_BUCKETS
    answer_buckets: tuple[Bucket, ...] = ANSWER_BUCKETS

    @field_validator("request_buckets", "answer_buckets")
    @classmethod
    def _increasing(cls, buckets: tuple[int, ...]) -> tuple[int, ...]:
        return check_buckets(buckets)
