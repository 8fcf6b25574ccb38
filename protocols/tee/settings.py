"""The tee stage's params (checked when the scenario is parsed)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # at most; an answer ends earlier, at the end of its line
    max_new_tokens: int = Field(default=24, ge=1, le=256)
    baseline: bool = False  # also serve each prompt in plaintext, for the benchmark
    repeat: int = Field(default=1, ge=1, le=100)
