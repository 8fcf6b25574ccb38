"""Retrieval-augmented generation at the end user: each question is embedded
locally, its cluster fetched by PIR (client.py), the fetched documents
ranked, and the top ones put in the shared model's prompt; the model
answers locally. A stale catalog is downloaded again once; any other error
leaves the question unanswered, never answered wrongly.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.transformer import TOKENIZER, generate
from models.corpus import pretrained_model
from parties.errors import AirlockError
from parties.protocol import FINGERPRINTS, Action, PartyContext, holdings_as
from parties.roles import EndUser
from protocols.pir.catalog import StaleCatalog
from protocols.pir.client import Client
from protocols.pir.embed import DIMENSIONS, embed
from protocols.pir.index import decode_record, rank
from protocols.pir.settings import Settings


def retrieved_documents(rows: list[np.ndarray], span: int) -> tuple[np.ndarray, list[str]]:
    """The embeddings and texts of the first `span` rows. Every row is
    decoded, padding too, so the work does not depend on the span. A row
    that matched its digest but is not a document (the database committed
    to garbage) is left out rather than failing: a failure would happen
    exactly when its cluster is wanted."""
    decoded: list[tuple[np.ndarray, str] | None] = []
    for row in rows:
        try:
            decoded.append(decode_record(row))
        except (AirlockError, UnicodeDecodeError):
            decoded.append(None)
    kept = [d for d in decoded[:span] if d is not None]
    embeddings = np.array([e for e, _ in kept], dtype=np.float16).reshape(-1, DIMENSIONS)
    return embeddings, [t for _, t in kept]


def _prompt_text(documents: list[str], question: str, context: int) -> str:
    """The retrieved text, then the question, in the model's vocabulary, cut to its context."""
    text = " ".join(d.split(": ", 1)[-1] for d in documents) + "\n" + question
    kept = "".join(c for c in text.lower() if c in TOKENIZER.index)
    return kept[-context:]


def _fingerprints(prompts: list[str], embeddings: np.ndarray) -> list[str]:
    """What would reveal the questions: their text and 32-byte windows of
    their embeddings, as float32 and as float16."""
    return (
        [p.encode().hex() for p in prompts]
        + [q.astype("<f4").tobytes()[:32].hex() for q in embeddings]
        + [q.astype("<f2").tobytes()[:32].hex() for q in embeddings]
    )


def retrieve_with(client_type: type[Client]) -> Action:
    """The retrieve action, fetching with `client_type` (an adversary's may differ)."""

    def retrieve(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
        s = Settings.model_validate(ctx.settings)  # the client's own, never a database's
        prompts = list(holdings_as(ctx, EndUser).prompts)
        model = pretrained_model(s.pretrain_steps)
        client = client_type(ctx, s)
        client.download_catalogs()
        embeddings = embed(prompts) if prompts else np.zeros((0, DIMENSIONS), np.float32)
        results, errors, timings = [], [], []
        for prompt, query in zip(prompts, embeddings, strict=True):
            started = time.perf_counter()
            try:
                try:
                    span, rows = client.fetch_cluster(query)
                except StaleCatalog as stale:
                    errors.append(f"{prompt!r}: {stale}; downloading the catalog again")
                    client.download_catalogs()
                    span, rows = client.fetch_cluster(query)
            except AirlockError as error:
                errors.append(f"{prompt!r}: {error}")
                continue
            documents = rank(query, *retrieved_documents(rows, span), s.top_k)
            timings.append(time.perf_counter() - started)
            prompt_text = _prompt_text(documents, prompt, model.config.context)
            answer = generate(model, prompt_text, s.max_new_tokens)[len(prompt_text) :]
            results.append({"prompt": prompt, "documents": documents, "answer": answer})
        summary: dict[str, Any] = {"scheme": s.scheme, "answers": results, "errors": errors}
        if timings:
            summary["retrieval_ms"] = round(1000 * min(timings), 1)
        summary[FINGERPRINTS] = {f"query:{ctx.name}": _fingerprints(prompts, embeddings)}
        return summary

    return retrieve


retrieve = retrieve_with(Client)
