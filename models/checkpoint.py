"""The shared model's checkpoint, shipped with the project: weights
(safetensors), tokenizer (JSON) and a manifest that records how they were
made (`python -m models.pretrain`: command, seed, steps, digests of the
corpus, the tokenizer and the weights) and how the model measured.

Every protocol serves it (or fine-tunes from it) instead of pretraining
at run time. Loading checks each file against the manifest's digest: a
missing or corrupted file is an error naming the file and the command that
rebuilds it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.tokenizer import WordPieces
from models.transformer import BadCheckpoint, Transformer

CHECKPOINT = Path(__file__).resolve().parent / "checkpoint"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST = "manifest.json"
REBUILD = "python -m models.pretrain"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Checkpoint:
    model: Transformer
    tokenizer: WordPieces
    manifest: dict[str, Any]

    def write(self, directory: Path) -> None:
        """Weights, tokenizer and manifest (with their digests) into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        weights = self.model.to_bytes()
        tokenizer = self.tokenizer.to_json().encode()
        (directory / WEIGHTS_FILE).write_bytes(weights)
        (directory / TOKENIZER_FILE).write_bytes(tokenizer)
        manifest = {
            **self.manifest,
            "weights_sha256": sha256_hex(weights),
            "tokenizer_sha256": sha256_hex(tokenizer),
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _read(directory: Path, name: str) -> bytes:
    path = directory / name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadCheckpoint(
            f"{path} cannot be read ({exc.strerror}): rebuild it with `{REBUILD}`"
        ) from None


def load_checkpoint(directory: Path = CHECKPOINT) -> Checkpoint:
    """The checkpoint in `directory`, each file checked against the manifest."""
    try:
        manifest = json.loads(_read(directory, MANIFEST))
        digests = {
            WEIGHTS_FILE: manifest["weights_sha256"],
            TOKENIZER_FILE: manifest["tokenizer_sha256"],
        }
    except (ValueError, KeyError, TypeError):
        raise BadCheckpoint(
            f"{directory / MANIFEST} is not a checkpoint manifest: rebuild it with `{REBUILD}`"
        ) from None
    files = {}
    for name, digest in digests.items():
        files[name] = _read(directory, name)
        if sha256_hex(files[name]) != digest:
            raise BadCheckpoint(
                f"{directory / name} does not match its digest in {MANIFEST} (corrupted or "
                f"edited): rebuild it with `{REBUILD}`"
            )
    try:
        tokenizer = WordPieces.from_json(files[TOKENIZER_FILE].decode())
    except Exception as exc:  # the tokenizers library raises its own types
        raise BadCheckpoint(f"{directory / TOKENIZER_FILE} does not load: {exc}") from None
    return Checkpoint(Transformer.from_bytes(files[WEIGHTS_FILE]), tokenizer, manifest)


@functools.cache
def shipped() -> Checkpoint:
    """The checkpoint shipped with the project, loaded once per process."""
    return load_checkpoint()


def served_model() -> Transformer:
    """A fresh copy of the shipped model's weights: each caller may train or
    load into its own copy without touching another's."""
    return Transformer.from_bytes(shipped().model.to_bytes())


def shipped_tokenizer() -> WordPieces:
    """The shipped tokenizer: public, the same for every party."""
    return shipped().tokenizer
