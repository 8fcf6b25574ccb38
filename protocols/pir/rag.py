"""Retrieval-augmented generation at the end user: each question is embedded
locally, its cluster fetched by PIR (client.py) or its top documents
ranked under HE and fetched by PIR (he.py), the fetched documents
ranked, and the whole top one put in the shared model's prompt
(`grounded_prompt`); the shipped model (models/checkpoint/) answers locally,
greedily, up to the end of the line. A stale catalog is downloaded again
once; any other error leaves the question unanswered, never answered
wrongly: a question or a guideline the tokenizer cannot take, or a prompt
that does not fit the model's context with room for the answer, is refused
with its reason, never cut.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from models.checkpoint import served_model, shipped_tokenizer
from models.corpus import grounded_prompt
from models.pretrain import answer
from models.tokenizer import WordPieces
from models.transformer import BadPrompt
from parties.errors import AirlockError
from parties.protocol import FINGERPRINTS, Action, PartyContext, holdings_as
from parties.roles import EndUser
from protocols.artifacts import RETRIEVED, Retrieved
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


def _one_line(text: str, what: str, tokenizer: WordPieces) -> None:
    """BadPrompt, naming `what`, unless the tokenizer takes `text` as one line
    (a line break would end the question or the context early)."""
    if "\n" in text:
        raise BadPrompt(f"{what} holds a line break: the prompt takes it on one line")
    try:
        tokenizer.encode(text)
    except BadPrompt as refused:
        raise BadPrompt(f"{what}: {refused}") from None


def grounded(
    tokenizer: WordPieces, question: str, guideline: str | None, context: int, room: int
) -> str:
    """The prompt the model answers: the question and the whole guideline
    (`grounded_prompt`). BadPrompt if the tokenizer cannot take either, or
    if the prompt leaves fewer than `room` tokens of the `context` for the
    answer: nothing is ever cut."""
    _one_line(question, "the question", tokenizer)
    if guideline is not None:
        _one_line(guideline, f"the retrieved guideline {guideline[:40]!r}", tokenizer)
    prompt = grounded_prompt(question, guideline).lower()
    size = len(tokenizer.encode(prompt))
    if size + room > context:
        what = "the question with its guideline" if guideline is not None else "the question"
        raise BadPrompt(
            f"{what} takes {size} tokens: with {room} for the answer, more than the "
            f"model's context of {context}"
        )
    return prompt


def _fingerprints(prompts: list[str], embeddings: np.ndarray) -> list[str]:
    """What would reveal the questions: their text and 32-byte windows of
    their embeddings, as float32 and as float16."""
    return (
        [p.encode().hex() for p in prompts]
        + [q.astype("<f4").tobytes()[:32].hex() for q in embeddings]
        + [q.astype("<f2").tobytes()[:32].hex() for q in embeddings]
    )


def fetch(client: Client, s: Settings, query: np.ndarray) -> tuple[int, list[np.ndarray]]:
    """(how many of the rows are documents to rank, the rows): the top_k
    ranked under HE, or the nearest cluster padded to the largest."""
    if s.ranking == "he":
        rows = client.fetch_ranked(query)
        return len(rows), rows
    return client.fetch_cluster(query)


def retrieve_with(client_type: type[Client]) -> Action:
    """The retrieve action, fetching with `client_type` (an adversary's may differ)."""

    def retrieve(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
        s = Settings.model_validate(ctx.settings)  # the client's own, never a database's
        prompts = list(holdings_as(ctx, EndUser).prompts)
        model, tokenizer = served_model(), shipped_tokenizer()
        context, room = model.config.context, s.max_new_tokens
        client = client_type(ctx, s)
        client.download_catalogs()
        embeddings = embed(prompts) if prompts else np.zeros((0, DIMENSIONS), np.float32)
        results, errors, timings = [], [], []
        found: dict[str, tuple[str, ...]] = {}  # question -> its documents, best first
        for prompt, query in zip(prompts, embeddings, strict=True):
            started = time.perf_counter()
            try:
                grounded(tokenizer, prompt, None, context, room)  # before any query is sent
                try:
                    span, rows = fetch(client, s, query)
                except StaleCatalog as stale:
                    errors.append(f"{prompt!r}: {stale}; downloading the catalog again")
                    client.download_catalogs()
                    span, rows = fetch(client, s, query)
                documents = rank(query, *retrieved_documents(rows, span), s.top_k)
                timings.append(time.perf_counter() - started)
                if not documents:
                    raise AirlockError("no document was retrieved to answer from")
                prompt_text = grounded(tokenizer, prompt, documents[0], context, room)
            except AirlockError as error:
                errors.append(f"{prompt!r}: {error}")
                continue
            found[prompt] = tuple(documents)
            if not s.answer:
                results.append({"prompt": prompt, "documents": documents})
                continue
            reply = answer(model, tokenizer, prompt_text, limit=room)
            results.append({"prompt": prompt, "documents": documents, "answer": reply})
        # for a later stage that answers elsewhere
        ctx.store.put(RETRIEVED, Retrieved(questions=tuple(found), documents=tuple(found.values())))
        summary: dict[str, Any] = {
            "scheme": s.scheme,
            "ranking": s.ranking,
            "answers": results,
            "errors": errors,
        }
        if timings:
            summary["retrieval_ms"] = round(1000 * min(timings), 1)
        summary[FINGERPRINTS] = {f"query:{ctx.name}": _fingerprints(prompts, embeddings)}
        return summary

    return retrieve


retrieve = retrieve_with(Client)
