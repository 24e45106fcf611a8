"""Ingest files into the knowledge base: load, clean, chunk, redact PII, embed, store.

Incremental by content: an unchanged file (same hash) adds nothing; a changed
file's chunks are replaced; a chunk whose text is already stored (from any
file) is not stored again. Each file is ingested whole or not at all (see
`retrieval.catalog`).
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from assistant.errors import BadInput
from retrieval.catalog import Catalog, recover
from retrieval.chunking import Chunk, chunk_document, chunk_id
from retrieval.embeddings import Embedder
from retrieval.loaders import SUPPORTED, load_file
from retrieval.store import VectorStore

log = logging.getLogger(__name__)
Redact = Callable[[str], tuple[str, list]]


@dataclass
class IngestSummary:
    files: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    pii_redacted: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Ingestor:
    """Everything one ingest needs, built once from settings."""

    store: VectorStore
    catalog: Catalog
    embedder: Embedder
    chunk_size: int
    chunk_overlap: int
    max_bytes: int
    redact: Redact | None = None

    def ingest(self, paths: Iterable[str | Path]) -> IngestSummary:
        recover(self.catalog, self.store.delete)
        files, errors = expand(paths)
        summary = IngestSummary(errors=errors)
        for path in files:
            try:
                added, unchanged, pii = self.ingest_file(path)
            except BadInput as exc:
                summary.errors.append({"path": str(path), "error": str(exc)})
                continue
            except Exception as exc:  # one bad file must not stop the batch
                log.exception("ingesting %s failed", path)
                summary.errors.append({"path": str(path), "error": f"{type(exc).__name__}: {exc}"})
                continue
            summary.files += 1
            summary.chunks_added += added
            summary.chunks_unchanged += unchanged
            summary.pii_redacted += pii
        return summary

    def ingest_file(self, path: Path) -> tuple[int, int, int]:
        """Returns (chunks added, chunks unchanged, PII spans redacted)."""
        doc = load_file(path, self.max_bytes)
        file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        known = self.catalog.document(doc.source)
        if known and known["file_hash"] == file_hash:
            return 0, known["chunks"], 0
        chunks, pii = chunk_document(doc, self.chunk_size, self.chunk_overlap), 0
        if self.redact is not None:
            chunks, pii = _redact_chunks(chunks, self.redact)
        chunks = list({c.chunk_id: c for c in chunks}.values())  # identical chunks once
        new_ids = {c.chunk_id for c in chunks}
        old_ids = self.catalog.chunk_ids(doc.source)
        stored = self.store.existing([c.chunk_id for c in chunks if c.chunk_id not in old_ids])
        to_write = [c for c in chunks if c.chunk_id not in old_ids and c.chunk_id not in stored]
        pending = self.catalog.begin(doc.source, [c.chunk_id for c in to_write], sorted(old_ids - new_ids))
        try:
            self.store.add(to_write, self.embedder.embed([c.text for c in to_write]))
            self.catalog.commit(pending, {
                "source": doc.source, "file_hash": file_hash, "title": doc.title, "doc_type": doc.doc_type,
                "chunks": len(chunks), "pii_redacted": pii,
            }, new_ids)
        except BaseException:
            # Roll back: nothing of this version becomes visible, the previous one stays.
            recover(self.catalog, self.store.delete)
            raise
        self.store.delete(sorted(self.catalog.unreferenced(old_ids - new_ids)))
        self.catalog.finish(pending)
        return len(new_ids - old_ids), len(new_ids & old_ids), pii

    def remove(self, source: str) -> int:
        """Remove a document; its chunks go too unless another document shares them."""
        count, orphans = self.catalog.remove(source)
        self.store.delete(sorted(orphans))
        return count


def expand(paths: Iterable[str | Path]) -> tuple[list[Path], list[dict]]:
    """Files named directly, and supported files found under folders (sorted, so runs repeat)."""
    files: list[Path] = []
    errors: list[dict] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED))
        elif path.is_file():
            files.append(path)
        else:
            errors.append({"path": str(path), "error": "no such file or folder"})
    return files, errors


def _redact_chunks(chunks: list[Chunk], redact: Redact) -> tuple[list[Chunk], int]:
    out, count = [], 0
    for chunk in chunks:
        text, entities = redact(chunk.text)
        count += len(entities)
        # The id is derived from the redacted text, so no raw value shapes anything stored.
        out.append(chunk if not entities else Chunk(
            chunk_id(text), chunk.source, chunk.title, chunk.heading, chunk.page, chunk.index, text,
            chunk.doc_type))
    return out, count
