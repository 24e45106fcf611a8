"""Search the knowledge base: embed the (redacted) query, nearest chunks, score threshold."""
from __future__ import annotations

from retrieval.embeddings import Embedder
from retrieval.store import Hit, VectorStore


class Retriever:
    def __init__(self, store: VectorStore, embedder: Embedder, k: int = 4, min_score: float = 0.25) -> None:
        self.store = store
        self.embedder = embedder
        self.k = k
        self.min_score = min_score

    def search(self, query: str, k: int | None = None) -> list[Hit]:
        """The k nearest chunks, best first, whatever their score."""
        if not query.strip():
            return []
        [vector] = self.embedder.embed([query])
        return self.store.query(vector, k or self.k)

    def context_for(self, query: str) -> list[Hit]:
        """Chunks good enough to ground an answer: at or above the relevance threshold."""
        return [h for h in self.search(query) if h.score >= self.min_score]
