"""Retrieval-augmented generation at the end user: each question is embedded
locally, its cluster fetched by PIR (client.py) or its top documents
ranked under HE and fetched by PIR (he.py), the fetched documents
ranked, and the whole top one put in the shared model's prompt
(`grounded_prompt`); the shipped model (models/checkpoint/) answers locally,
greedily, up to the end of the line. Nothing is ever cut: a question the
tokenizer cannot take, or too long for the model's context with room for
the answer, is left out with its reason before any query is sent. A stale
catalog is downloaded again once. Any other failure, once a question's
queries were sent (a wrong answer, steered scores, a guideline the model
cannot take), stops the run, after every question's queries, the same way
whichever question or record it was (`retrieve_with`): never a wrong
answer, and never a later stage that sends one prompt fewer.
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


def fitting(
    tokenizer: WordPieces, question: str, ranked: list[str], context: int, room: int, k: int
) -> tuple[list[str], str, list[str]]:
    """The first `k` of the `ranked` documents that the model can take in
    the question's prompt, the prompt with the first, and why any before
    were left out. A document the model cannot take (a character outside
    its alphabet, a line break, too long for the context) is left out, as a
    record that is not a document is: failing on it would happen exactly
    when it ranks first. AirlockError if none fits."""
    documents: list[str] = []
    prompt, left_out = "", []
    for document in ranked:
        try:
            text = grounded(tokenizer, question, document, context, room)
        except BadPrompt as refused:
            left_out.append(str(refused))
            continue
        prompt = prompt or text
        documents.append(document)
        if len(documents) == k:
            break
    if not documents:
        raise AirlockError("no retrieved document can be put in the prompt")
    return documents, prompt, left_out


class RetrievalFailed(AirlockError):
    """A question's retrieval failed after its queries were sent: the stage
    fails once every question's queries are sent, and the run stops."""


# the run stops alike whatever failed, for whichever question: the reasons
# follow, for alice's operator only (no party sees a run's failure)
STOPS = (
    "the run stops here, after every question's queries were sent, whatever failed "
    "and for whichever question (a later stage would show which)"
)


def _fetch_or_error(
    client: Client, s: Settings, query: np.ndarray, notes: list[str], prompt: str
) -> tuple[int, list[np.ndarray]] | AirlockError:
    """The question's rows (fetch), a stale catalog downloaded again once;
    or the error that ended its retrieval."""
    try:
        try:
            return fetch(client, s, query)
        except StaleCatalog as stale:
            notes.append(f"{prompt!r}: {stale}; downloading the catalog again")
            client.download_catalogs()
            return fetch(client, s, query)
    except AirlockError as error:
        return error


def retrieve_with(client_type: type[Client]) -> Action:
    """The retrieve action, fetching with `client_type` (an adversary's may differ).

    Every question's queries are sent first, whatever comes back; then each
    question's documents are ranked, put in its prompt and (unless `answer
    = false`) answered. A retrieval that fails once its queries were sent
    (a wrong answer, a refusal, steered scores, no document, a guideline
    the model cannot take) is a failure the database can make depend on
    which records were wanted (it alters one record, or one score): so the
    action fails, after every question's queries, with one error, and the
    run stops before any later stage. A later stage never sends one prompt
    fewer, nor anything else that would say which question failed. A
    question refused before any query (the model cannot take it) is only
    left out: that depends on the question alone, and the databases saw no
    query for it either."""

    def retrieve(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
        s = Settings.model_validate(ctx.settings)  # the client's own, never a database's
        prompts = list(holdings_as(ctx, EndUser).prompts)
        model, tokenizer = served_model(), shipped_tokenizer()
        context, room = model.config.context, s.max_new_tokens
        client = client_type(ctx, s)
        client.download_catalogs()
        embeddings = embed(prompts) if prompts else np.zeros((0, DIMENSIONS), np.float32)
        notes: list[str] = []  # what the user's operator is told, nothing failed by it
        asked: list[tuple[str, np.ndarray]] = []
        for prompt, query in zip(prompts, embeddings, strict=True):
            try:
                grounded(tokenizer, prompt, None, context, room)  # before any query is sent
            except AirlockError as error:
                notes.append(f"{prompt!r}: {error}")
                continue
            asked.append((prompt, query))
        # every question's queries, whatever comes back for any of them
        fetched, timings = [], []
        for prompt, query in asked:
            started = time.perf_counter()
            fetched.append(_fetch_or_error(client, s, query, notes, prompt))
            timings.append(time.perf_counter() - started)
        failed: list[str] = []
        found: dict[str, tuple[str, ...]] = {}  # question -> its documents, best first
        prompt_texts: dict[str, str] = {}
        for (prompt, query), got in zip(asked, fetched, strict=True):
            try:
                if isinstance(got, AirlockError):
                    raise got
                span, rows = got
                ranked = rank(query, *retrieved_documents(rows, span), len(rows))
                documents, prompt_texts[prompt], left_out = fitting(
                    tokenizer, prompt, ranked, context, room, s.top_k
                )
                notes += [f"{prompt!r}: left out {reason}" for reason in left_out]
            except AirlockError as error:
                failed.append(f"{prompt!r}: {error}")
                continue
            found[prompt] = tuple(documents)
        if failed:
            raise RetrievalFailed(
                f"{len(failed)} of {len(asked)} retrievals failed; {STOPS}: " + "; ".join(failed)
            )
        results: list[dict[str, Any]] = []
        for prompt, kept in found.items():
            result: dict[str, Any] = {"prompt": prompt, "documents": list(kept)}
            if s.answer:
                result["answer"] = answer(model, tokenizer, prompt_texts[prompt], limit=room)
            results.append(result)
        # for a later stage that answers elsewhere
        ctx.store.put(RETRIEVED, Retrieved(questions=tuple(found), documents=tuple(found.values())))
        summary: dict[str, Any] = {
            "scheme": s.scheme,
            "ranking": s.ranking,
            "answers": results,
            "errors": notes,
        }
        if timings:
            summary["retrieval_ms"] = round(1000 * min(timings), 1)
        summary[FINGERPRINTS] = {f"query:{ctx.name}": _fingerprints(prompts, embeddings)}
        return summary

    return retrieve


retrieve = retrieve_with(Client)
