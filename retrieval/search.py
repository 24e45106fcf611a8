"""Search the knowledge base: vectors, BM25, or both fused.

Hybrid search catches what embeddings miss (exact product names, codes,
numbers) and what keywords miss (paraphrases). Fusion is a weighted sum of
cosine similarity and BM25 scaled to [0, 1]: on the sample questions it beat
reciprocal rank fusion, which let weak keyword matches outrank good vector
hits. Every hit's `score` is its cosine similarity to the query, whichever
list found it, so one relevance threshold (`min_score`) means the same in
every mode.
"""
from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import Literal, Sequence

import numpy as np

from retrieval.catalog import Catalog
from core.embeddings import Embedder
from retrieval.rerank import SentenceReranker
from retrieval.store import Hit, VectorStore

Mode = Literal["vector", "bm25", "hybrid", "hybrid+rerank"]
MODES: tuple[str, ...] = ("vector", "bm25", "hybrid", "hybrid+rerank")
RERANK_POOL = 10  # candidates the reranker reorders
_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from how i if in is it my of on or the to what when where "
    "which who why will with you your me we our this that there".split()
)


def tokenize(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOP]


class _Bm25Index:
    """BM25 over the collection as a sparse document-term matrix of precomputed weights.

    A query costs one sparse column sum (milliseconds at 100k chunks), where a
    per-document Python loop (rank-bm25) costs about a second. Rebuilt when the
    collection changes.
    """

    K1 = 1.5
    B = 0.75

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._weights = None  # CSC matrix: chunks x terms
        self._vocab: dict[str, int] = {}
        self._idf = np.zeros(0)
        self.ids: list[str] = []
        self.position: dict[str, int] = {}

    def scores(self, store: VectorStore, query: str) -> np.ndarray:
        """BM25 score of every chunk (aligned with `self.ids`), scaled so the best is 1."""
        self._refresh(store)
        cols = sorted({self._vocab[t] for t in tokenize(query) if t in self._vocab})
        if self._weights is None or not cols:
            return np.zeros(len(self.ids))
        raw = np.asarray(self._weights[:, cols].sum(axis=1)).ravel()
        top = raw.max(initial=0.0)
        return raw / top if top > 0 else raw

    def _refresh(self, store: VectorStore) -> None:
        with self._lock:
            version = store.version()
            if version == self._version:
                return
            got = store.collection.get(include=["documents"])
            self.ids = list(got["ids"])
            self.position = {cid: i for i, cid in enumerate(self.ids)}
            self._weights, self._vocab, self._idf = self._build([tokenize(d or "") for d in got["documents"]])
            self._version = version

    def idf(self, store: VectorStore, words: Sequence[str]) -> dict[str, float]:
        """Each word's idf over the chunks; a word no chunk holds gets the rarest word's."""
        self._refresh(store)
        with self._lock:  # one rebuild's vocabulary with that rebuild's idf
            vocab, idf = self._vocab, self._idf
        top = float(idf.max(initial=1.0))
        return {w: float(idf[vocab[w]]) if w in vocab else top for w in words}

    def unknown(self, store: VectorStore, words: Sequence[str]) -> list[str]:
        """The words that no chunk holds, in any of their plain forms ("rug" for "rugs")."""
        self._refresh(store)
        with self._lock:
            vocab = self._vocab
        return [w for w in words if not any(form in vocab for form in _forms(w))]

    def _build(self, docs: list[list[str]]):
        from scipy.sparse import csc_matrix

        if not docs:
            return None, {}, np.zeros(0)
        vocab: dict[str, int] = {}
        rows, cols, tfs = [], [], []
        for row, tokens in enumerate(docs):
            counts: dict[int, int] = {}
            for token in tokens:
                col = vocab.setdefault(token, len(vocab))
                counts[col] = counts.get(col, 0) + 1
            rows.extend([row] * len(counts))
            cols.extend(counts)
            tfs.extend(counts.values())
        rows_a, cols_a, tf = np.asarray(rows), np.asarray(cols), np.asarray(tfs, dtype=np.float64)
        lengths = np.asarray([len(d) for d in docs], dtype=np.float64)
        df = np.bincount(cols_a, minlength=len(vocab))
        idf = np.log((len(docs) - df + 0.5) / (df + 0.5) + 1.0)  # Lucene's non-negative idf
        norm = self.K1 * (1 - self.B + self.B * lengths[rows_a] / max(lengths.mean(), 1e-9))
        weights = idf[cols_a] * tf * (self.K1 + 1) / (tf + norm)
        return csc_matrix((weights, (rows_a, cols_a)), shape=(len(docs), len(vocab))), vocab, idf


_SUFFIXES = ("s", "es", "ed", "ing", "er", "ers")


def _forms(word: str) -> list[str]:
    """The word, with a plural ending and without a common ending ("rugs" finds "rug")."""
    forms = [word, word + "s", word + "es"]
    forms += [word[: -len(end)] for end in _SUFFIXES if word.endswith(end) and len(word) > len(end) + 2]
    return forms


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores, best first, without sorting all of them."""
    if len(scores) <= n:
        return np.argsort(-scores)
    part = np.argpartition(-scores, n)[:n]
    return part[np.argsort(-scores[part])]


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        k: int = 4,
        min_score: float = 0.25,
        mode: Mode = "hybrid",
        bm25_weight: float = 0.1,
        catalog: Catalog | None = None,
        reranker: SentenceReranker | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.k = k
        self.min_score = min_score
        self.mode = mode
        self.bm25_weight = bm25_weight
        self.catalog = catalog
        self.reranker = reranker
        self._bm25 = _Bm25Index()

    def search(self, query: str, k: int | None = None, mode: Mode | None = None, where: dict | None = None) -> list[Hit]:
        """The k best live chunks, best first, whatever their score. `where` filters on chunk
        metadata (source, title, heading, page, doc_type), in Chroma's filter syntax."""
        k = k or self.k
        mode = mode or self.mode
        if not query.strip():
            return []
        [vector] = self.embedder.embed([query])
        rerank = mode == "hybrid+rerank"
        if rerank and self.reranker is None:
            raise ValueError("mode hybrid+rerank needs a reranker")
        # Ask for a few more than k: chunks of an interrupted ingest are dropped below.
        wanted = max(k, RERANK_POOL) if rerank else k
        ranked = self._live(self._rank(query, vector, wanted + 5, "hybrid" if rerank else mode, where))
        if rerank:
            ranked = self.reranker.rerank(query, ranked[:wanted])
        return ranked[:k]

    def _rank(self, query: str, vector, k: int, mode: str, where: dict | None) -> list[Hit]:
        if mode == "vector":
            return self.store.query(vector, k, where)
        keyword = self._bm25.scores(self.store, query)
        if where:
            allowed = [self._bm25.position[cid] for cid in self.store.collection.get(where=where, include=[])["ids"]
                       if cid in self._bm25.position]
            mask = np.zeros(len(keyword), dtype=bool)
            mask[allowed] = True
            keyword = np.where(mask, keyword, 0.0)
        pool = max(4 * k, 20)
        ranked_ids = [self._bm25.ids[i] for i in _top(keyword, pool) if keyword[i] > 0]
        if mode == "bm25":
            by_id = {h.chunk_id: h for h in self.store.get_scored(ranked_ids[:k], vector)}
            return [by_id[cid] for cid in ranked_ids[:k] if cid in by_id]
        # hybrid: candidates from both lists, ranked by cosine + weight x scaled BM25.
        candidates = {h.chunk_id: h for h in self.store.query(vector, pool, where)}
        missing = [cid for cid in ranked_ids if cid not in candidates]
        if missing:  # keyword-only candidates still get a cosine score
            candidates.update({h.chunk_id: h for h in self.store.get_scored(missing, vector)})
        def fused(hit: Hit) -> float:
            i = self._bm25.position.get(hit.chunk_id)
            return hit.score + self.bm25_weight * (keyword[i] if i is not None else 0.0)

        return sorted(candidates.values(), key=fused, reverse=True)[:k]

    def _live(self, hits: list[Hit]) -> list[Hit]:
        """Keep chunks the catalog knows; name a document that still holds each one."""
        if self.catalog is None:
            return hits
        owners = self.catalog.live(h.chunk_id for h in hits)
        return [
            h if h.source in owners[h.chunk_id] else replace(h, source=owners[h.chunk_id][0])
            for h in hits if h.chunk_id in owners
        ]

    def term_weights(self, words: Sequence[str]) -> dict[str, float]:
        """How much each word tells chunks apart (its idf over the collection): "larkspur" is in
        most chunks and says little; "braille" is in one."""
        return self._bm25.idf(self.store, words)

    def catalog_state(self) -> tuple[dict[str, str] | None, str | None]:
        """The knowledge base's documents with their file hashes, and when one was last ingested
        (ISO time), from one read of the catalog; (None, None) without a catalog."""
        if self.catalog is None:
            return None, None
        rows = self.catalog.documents()
        return {d["source"]: d["file_hash"] for d in rows}, max((d["ingested_at"] for d in rows), default=None)

    def documents(self) -> dict[str, str] | None:
        """The knowledge base's documents and their file hashes (None without a catalog to list them)."""
        return self.catalog_state()[0]

    def unknown_words(self, words: Sequence[str]) -> list[str]:
        """The words that no chunk of the knowledge base holds."""
        return self._bm25.unknown(self.store, words)

    def context_for(self, query: str, earlier: Sequence[str] = ()) -> list[Hit]:
        """Chunks good enough to ground an answer: at or above the relevance threshold.

        `earlier` are the conversation's previous questions, oldest first. A follow-up ("and
        if I paid with a gift card?") names little of its subject, so the question is also
        searched together with the one before it, and the two lists are merged: each chunk
        keeps its better score."""
        hits = self.search(query)
        if earlier:
            best = {h.chunk_id: h for h in hits}
            for hit in self.search(f"{earlier[-1]} {query}"):
                if hit.chunk_id not in best or hit.score > best[hit.chunk_id].score:
                    best[hit.chunk_id] = hit
            hits = sorted(best.values(), key=lambda h: -h.score)[: self.k]
        return [h for h in hits if h.score >= self.min_score]
