"""The vector store: a Chroma collection, embedded (PersistentClient) or a server (HttpClient).

We pass our own vectors, so Chroma never loads (or downloads) an embedding model.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from core.errors import ConfigError
from retrieval.chunking import Chunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    source: str
    text: str
    score: float  # cosine similarity, 1 is identical
    title: str = ""
    heading: str = ""
    page: int | None = None

    def as_dict(self, with_text: bool = True) -> dict:
        out = {"source": self.source, "chunk_id": self.chunk_id, "score": round(self.score, 4)}
        if with_text:
            out["text"] = self.text
        return out


def make_client(persist_dir: Path | None = None, host: str | None = None, port: int = 8000):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if host:
        return chromadb.HttpClient(host=host, port=port, settings=chroma_settings)
    assert persist_dir is not None
    persist_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(persist_dir), settings=chroma_settings)


PRECISION_KEY = "embedding_precision"


class VectorStore:
    """A Chroma collection of chunk vectors. It records the precision its vectors were embedded
    with, and refuses to open at another one: int8 and fp32 vectors of one text differ a little,
    so a collection of both would rank unevenly (`reembed` converts it instead)."""

    def __init__(self, client, collection: str, precision: str | None = None) -> None:
        self.client = client
        self.collection = client.get_or_create_collection(
            collection, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        self._writes = 0
        self._count, self._counted_at = 0, float("-inf")
        if precision is not None:
            stored = self.precision()
            if stored is None:
                self._record_precision(precision)
            elif stored != precision:
                raise ConfigError(
                    f"collection {collection!r} holds {stored} vectors, but retrieval.embedding_precision "
                    f"resolves to {precision}: set it to {stored}, or convert the collection with "
                    f"`helpdesk docs reembed --collection {collection}`")

    def precision(self) -> str | None:
        """The precision the stored vectors were embedded with; None for an empty new collection.
        Collections written before this was recorded were fp32, the only precision then."""
        recorded = (self.collection.metadata or {}).get(PRECISION_KEY)
        if recorded is None and self.collection.count():
            return "fp32"
        return recorded

    def _record_precision(self, precision: str) -> None:
        self.collection.modify(metadata={**(self.collection.metadata or {}), PRECISION_KEY: precision})

    def reembed(self, embedder, page: int = 512) -> int:
        """Embed every stored chunk again from its stored text with `embedder`, and record its
        precision. Returns the number of chunks. Ids and texts do not change, so the catalog holds."""
        done, offset = 0, 0
        while True:
            got = self.collection.get(limit=page, offset=offset, include=["documents"])
            if not got["ids"]:
                break
            self.collection.update(ids=got["ids"], embeddings=np.asarray(embedder.embed(got["documents"]),
                                                                         dtype=np.float32))
            done += len(got["ids"])
            offset += page
        self._writes += 1
        self._record_precision(embedder.precision)
        return done

    def count(self) -> int:
        return self.collection.count()

    def chunks(self, page: int = 512) -> Iterator[Hit]:
        """Every stored chunk (score 0), page by page; the catalog says which are live."""
        offset = 0
        while True:
            got = self.collection.get(limit=page, offset=offset, include=["documents", "metadatas"])
            if not got["ids"]:
                return
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                yield _hit(cid, doc, meta, 0.0)
            offset += page

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these chunk ids are stored already (identical text from another file)."""
        if not ids:
            return set()
        return set(self.collection.get(ids=list(ids), include=[])["ids"])

    def add(self, chunks: Sequence[Chunk], vectors: Sequence[Sequence[float]]) -> None:
        if not chunks:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        for start in range(0, len(chunks), 1000):  # Chroma caps batch sizes
            batch = chunks[start:start + 1000]
            self._writes += 1
            self.collection.upsert(
                ids=[c.chunk_id for c in batch],
                embeddings=matrix[start:start + 1000],
                documents=[c.text for c in batch],
                metadatas=[c.metadata() for c in batch],
            )

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._writes += 1
            self.collection.delete(ids=list(ids))

    def version(self) -> tuple[int, int]:
        """Changes when this process writes, or when the chunk count changes (another process
        ingested or removed documents). It runs on every search, and counting 100k chunks
        takes ~6 ms, so the count is re-read at most once a second."""
        now = time.monotonic()
        if now - self._counted_at > 1.0:
            self._count, self._counted_at = self.collection.count(), now
        return self._writes, self._count

    def get_scored(self, ids: Sequence[str], vector: Sequence[float]) -> list[Hit]:
        """Chunks by id, scored by cosine similarity to `vector` (stored vectors are unit length)."""
        if not ids:
            return []
        got = self.collection.get(ids=list(ids), include=["documents", "metadatas", "embeddings"])
        query = np.asarray(vector, dtype=np.float32)
        return [
            _hit(cid, doc, meta, float(np.dot(np.asarray(emb, dtype=np.float32), query)))
            for cid, doc, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"])
        ]

    def query(self, vector: Sequence[float], k: int, where: dict | None = None) -> list[Hit]:
        got = self.collection.query(
            query_embeddings=[list(vector)], n_results=k, where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            _hit(cid, doc, meta, 1.0 - float(dist))
            for cid, doc, meta, dist in zip(got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0])
        ]


def _hit(chunk_id: str, doc: str | None, meta: dict | None, score: float) -> Hit:
    meta = meta or {}
    return Hit(chunk_id, meta.get("source", "?"), doc or "", score,
               meta.get("title", ""), meta.get("heading", ""), meta.get("page"))
