"""Reranking with an embedding model: a chunk scores by its best sentence.

No cross-encoder weights are available offline, so the second stage embeds at
a finer grain: a chunk embedding averages everything in the chunk, while the
question is usually answered by one sentence. Each candidate's score becomes
cosine(query, chunk) + weight x max cosine(query, sentence), the sentences'
cosine under this reranker's own model (the sentence scorer,
all-mpnet-base-v2, when `retrieval.mode` is hybrid+rerank). Sentence vectors
are cached per chunk id, so a popular chunk is split and embedded once.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict

import numpy as np

from core.embeddings import Embedder
from retrieval.store import Hit

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


_TABLE_ROW = re.compile(r"^\s*\|(.+)\|\s*$")
_TABLE_RULE = re.compile(r"^[\s|:\-]+$")


def _table_rows_as_sentences(body: str) -> str:
    """Each row of a Markdown table as a sentence that names its columns: "| PayPal | 3 to 5
    business days |" under "| Payment method | Time to appear |" reads "Payment method: PayPal;
    Time to appear: 3 to 5 business days." (a row alone says nothing of what its numbers are)."""
    out, header = [], None
    for line in body.split("\n"):
        row = _TABLE_ROW.match(line)
        if not row:
            out.append(line)
            header = None
            continue
        if _TABLE_RULE.match(line):
            continue
        cells = [c.strip() for c in row.group(1).split("|")]
        if header is None:
            header = cells
            continue
        named = [f"{h}: {c.rstrip('.')}" if h else c.rstrip(".") for h, c in zip(header, cells) if c]
        out.append("; ".join(named) + ".")
    return "\n".join(out)


_LIST_ITEM = re.compile(r"^\s*(\d+[.)]|[-*•])\s+")
_WRAP_WIDTH = 60  # a line this long that stops mid-sentence was wrapped (PDF text), not ended


def _unwrap(body: str) -> str:
    """Join lines that a PDF's layout broke mid-sentence: "...on the underside of the base" then
    "plate; on cordless vacuums..." is one sentence. A line ends a sentence when it ends in
    punctuation, is short (a heading), or the next line starts a list item."""
    lines = body.split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        prev = out[-1].rstrip()
        wrapped = (prev and prev[-1] not in ".!?:;|" and not _LIST_ITEM.match(line)
                   and line.strip() and (len(prev) >= _WRAP_WIDTH or line.lstrip()[:1].islower()))
        if wrapped:
            out[-1] = f"{prev} {line.strip()}"
        else:
            out.append(line)
    return "\n".join(out)


def sentences(chunk_text: str) -> list[str]:
    body = chunk_text.split("\n\n", 1)[-1]  # drop the "Title > Heading" prefix
    if "|" in body:
        body = _table_rows_as_sentences(body)
    body = _unwrap(body)
    parts = [p.strip(" -*") for p in _SENTENCE_END.split(body)]
    parts = [p for p in parts if len(p) > 15]
    return parts or [body]


class SentenceReranker:
    def __init__(self, embedder: Embedder, weight: float = 0.5, cache_size: int = 20_000) -> None:
        self.embedder = embedder
        self.weight = weight
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        query = np.asarray(self.embedder.embed([question])[0], dtype=np.float32)
        scored = [(hit.score + self.weight * float((self.sentence_vectors(hit) @ query).max()), i, hit)
                  for i, hit in enumerate(hits)]
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [hit for _, _, hit in scored]

    def sentence_vectors(self, hit: Hit) -> np.ndarray:
        """The vectors of `sentences(hit.text)`, cached by chunk id."""
        with self._lock:
            cached = self._cache.get(hit.chunk_id)
            if cached is not None:
                self._cache.move_to_end(hit.chunk_id)
                return cached
        vectors = np.asarray(self.embedder.embed(sentences(hit.text)), dtype=np.float32)
        with self._lock:
            self._cache[hit.chunk_id] = vectors
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vectors

