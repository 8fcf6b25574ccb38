"""The pir stage's params. Each party keeps the scenario's own (ctx.settings):
a client never takes a database's word for them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["xor", "simplepir"] = "xor"
    # "cluster": fetch the whole cluster nearest the question by PIR, rank it
    # here; "he": the database scores every document under CKKS (he.py), then
    # only the top_k are fetched by PIR
    ranking: Literal["cluster", "he"] = "cluster"
    clusters: int = Field(default=32, ge=1)
    top_k: int = Field(default=2, ge=1, le=16)
    # room for the answer: a prompt that leaves less of the model's context is refused
    max_new_tokens: int = Field(default=24, ge=1, le=64)
    # answer each question here with the shipped model (RAG on the user's
    # side), or only retrieve and keep the guidelines for a later stage that
    # answers elsewhere (the enclave, in the healthcare pipeline)
    answer: bool = True
