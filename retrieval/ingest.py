"""Ingest files into the vector store: load, clean, chunk, redact PII, embed, store.

Incremental by content: a file whose chunks are all stored already adds
nothing; a changed file's new chunks are written before its stale ones are
removed, so a crash never leaves the file with no chunks at all.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from assistant.errors import BadInput
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


def ingest_paths(
    paths: Iterable[str | Path],
    store: VectorStore,
    embedder: Embedder,
    chunk_size: int,
    chunk_overlap: int,
    max_bytes: int,
    redact: Redact | None = None,
) -> IngestSummary:
    files, errors = expand(paths)
    summary = IngestSummary(errors=errors)
    for path in files:
        try:
            added, unchanged, pii = ingest_file(path, store, embedder, chunk_size, chunk_overlap, max_bytes, redact)
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


def ingest_file(
    path: Path,
    store: VectorStore,
    embedder: Embedder,
    chunk_size: int,
    chunk_overlap: int,
    max_bytes: int,
    redact: Redact | None = None,
) -> tuple[int, int, int]:
    """Returns (chunks added, chunks unchanged, PII spans redacted)."""
    doc = load_file(path, max_bytes)
    file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    stored = store.ids_for_source(doc.source)
    if stored and all(h == file_hash for h in stored.values()):
        return 0, len(stored), 0
    chunks = chunk_document(doc, chunk_size, chunk_overlap)
    pii = 0
    if redact is not None:
        chunks, pii = _redact_chunks(chunks, redact)
    new = [c for c in chunks if c.chunk_id not in stored]
    store.add(new, embedder.embed([c.text for c in new]), file_hash)
    keep = {c.chunk_id for c in chunks}
    unchanged = [c for c in chunks if c.chunk_id in stored]
    if unchanged:  # same text, new file hash: refresh metadata so the next run sees it unchanged
        store.add(unchanged, embedder.embed([c.text for c in unchanged]), file_hash)
    store.delete([cid for cid in stored if cid not in keep])
    return len(new), len(unchanged), pii


def _redact_chunks(chunks: list[Chunk], redact: Redact) -> tuple[list[Chunk], int]:
    out, count = [], 0
    for chunk in chunks:
        text, entities = redact(chunk.text)
        count += len(entities)
        # The id is derived from the redacted text, so no raw value shapes anything stored.
        out.append(chunk if not entities else Chunk(
            chunk_id(chunk.source, chunk.index, text), chunk.source, chunk.title, chunk.heading,
            chunk.page, chunk.index, text))
    return out, count
