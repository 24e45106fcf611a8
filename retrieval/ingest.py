"""Ingest files into the knowledge base: load, clean, chunk, redact PII, embed, store.

Incremental by content: an unchanged file (same hash) adds nothing; a changed
file's chunks are replaced; a chunk whose text is already stored (from any
file) is not stored again. Each file is ingested whole or not at all (see
`retrieval.catalog`).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from core.errors import BadInput
from core.faults import crash_point
from retrieval.catalog import Catalog, Pending, recover
from retrieval.chunking import Chunk, chunk_document, chunk_id
from retrieval.embed_process import EmbeddingPool, EmbeddingProcess
from core.embeddings import Embedder
from retrieval.loaders import FORMATS, SUPPORTED, Blocks, LoadedDocument, load_file
from retrieval.store import VectorStore

log = logging.getLogger(__name__)
Redact = Callable[[str], tuple[str, list]]
# How a file name is read for PII: `_` as a space (a number in `call_415-555-0134`), and
# once more with `-` as a space too (an address in `escalations-maria@example.com-2024`),
# which the first reading would take for part of a longer, invalid one.
_NAME_READINGS = (str.maketrans("_", " "), str.maketrans("_-", "  "))


def redact_file_name(name: str, redact: Redact, key: bytes) -> tuple[str, int]:
    """A file name with its PII replaced, and how many spans were: `escalations-<PHONE_NUMBER>-1f0c9a2e.md`.

    The suffix is kept apart (an e-mail followed by `.md` reads as a longer address). A
    redacted name ends with a keyed digest of the raw one, so two files whose names differ
    only in their PII stay two documents, and the same file keeps its name on every ingest;
    without the key the digest tells nothing about the value."""
    path = Path(name)
    stem, suffix = (path.stem, path.suffix) if path.suffix else (name, "")
    spans: list[list] = []  # [start, end, type], merged across the readings
    for reading in _NAME_READINGS:
        for entity in redact(stem.translate(reading))[1]:
            for span in spans:
                if span[0] < entity.end and entity.start < span[1]:
                    span[0], span[1] = min(span[0], entity.start), max(span[1], entity.end)
                    break
            else:
                spans.append([entity.start, entity.end, entity.type])
    if not spans:
        return name, 0
    out, i = [], 0
    for start, end, kind in sorted(spans):
        out += [stem[i:start], f"<{kind}>"]
        i = max(i, end)
    out.append(stem[i:])
    digest = hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:8]
    return f"{''.join(out)}-{digest}{suffix}", len(spans)


@dataclass
class IngestSummary:
    files: int = 0
    chunks_added: int = 0
    chunks_unchanged: int = 0
    pii_redacted: int = 0
    errors: list[dict] = field(default_factory=list)
    per_file: list[dict] = field(default_factory=list)  # each file's outcome, in the order they ended

    def as_dict(self) -> dict:
        return asdict(self)

    def add(self, path: Path | str, added: int = 0, unchanged: int = 0, pii: int = 0,
            error: str | None = None) -> dict:
        """Count one file's outcome; returns its `per_file` line."""
        if error is None:
            self.files += 1
            self.chunks_added += added
            self.chunks_unchanged += unchanged
            self.pii_redacted += pii
        else:
            self.errors.append({"path": str(path), "error": error})
        outcome = {"path": str(path), "status": "error" if error else "ok", "chunks_added": added,
                   "chunks_unchanged": unchanged, "pii_redacted": pii, **({"error": error} if error else {})}
        self.per_file.append(outcome)
        return outcome


OnFile = Callable[[dict], None]  # told each file's outcome as soon as it is known (progress bars)


@dataclass
class _Planned:
    """One changed file, loaded, chunked and redacted, waiting to be written."""

    path: Path
    document: dict  # its catalog row
    chunks: list[Chunk]
    old_ids: set[str]  # the chunks its previous version had
    pii: int

    @property
    def new_ids(self) -> set[str]:
        return {c.chunk_id for c in self.chunks}


@dataclass(frozen=True)
class Ingestor:
    """Everything one ingest needs, built once from settings.

    Changed files are written in batches of about `batch_chunks` chunks: one embedding
    call, one vector-store write and one catalog transaction per step for the whole
    batch, instead of per file (those fixed costs were a third of the time for small
    files). Each file is still ingested whole or not at all.

    With a pool of embedding processes, an ingest of more than one batch starts them, and
    from then on each batch is embedded in one of them while earlier ones are written (see
    `retrieval.embed_process`).
    """

    store: VectorStore
    catalog: Catalog
    embedder: Embedder
    chunk_size: int
    chunk_overlap: int
    max_bytes: int
    redact: Redact | None = None
    # File names are redacted too; None keeps them as they are (only with `redact` None).
    redact_name: Callable[[str], tuple[str, int]] | None = None
    batch_chunks: int = 256
    chunker: Callable[[LoadedDocument, int, int], list[Chunk]] = chunk_document
    formats: dict[str, Callable[[Path], Blocks]] = field(default_factory=lambda: FORMATS)
    pool: EmbeddingPool | None = None
    smallest_batch: int = 32  # the pool's first and last batches (see `_batch_target`)

    def warm_up(self) -> None:
        """Start the embedding processes now and wait until they have loaded (benchmarks time steady state)."""
        if self.pool is not None:
            self.pool.start()
            self.pool.ready(wait=300)

    def ingest(self, paths: Iterable[str | Path], on_file: OnFile | None = None) -> IngestSummary:
        recover(self.catalog, self.store.delete)
        files, errors = expand(paths)
        summary = IngestSummary()
        tell = on_file or (lambda outcome: None)
        for error in errors:
            tell(summary.add(error["path"], error=error["error"]))
        # One ingest at a time uses the pool; a second one at once embeds in-process.
        pool = self.pool if self.pool is not None and self.pool.lock.acquire(blocking=False) else None
        try:
            self._ingest_files(files, summary, _BatchWriter(self, summary, tell, pool))
        finally:
            if pool is not None:
                pool.lock.release()
        return summary

    def _ingest_files(self, files: list[Path], summary: IngestSummary, writer: _BatchWriter) -> None:
        batch: list[_Planned] = []
        seen: set[str] = set()
        for path, planned in self._plan_ahead(files):
            if isinstance(planned, _Planned) and planned.document["source"] in seen:
                # Two files of one name: the later replaces the earlier, so plan it again
                # against the catalog as the earlier one left it.
                writer.push(batch)
                writer.flush()
                batch = []
                try:
                    planned = self._plan(path)
                except Exception as exc:
                    planned = exc
            if isinstance(planned, Exception):  # one bad file must not stop the batch
                writer.tell(summary.add(path, error=_error_message(path, planned)))
            elif isinstance(planned, int):  # unchanged since the last ingest
                writer.tell(summary.add(path, unchanged=planned))
            else:
                seen.add(planned.document["source"])
                batch.append(planned)
                if _chunks_in(batch) >= self._batch_target(writer):
                    writer.push(batch)
                    batch = []
        # The last batch goes out in small pieces, each to the least busy process, so the
        # processes finish together and the last write, which nothing overlaps, is short.
        for piece in _pieces(batch, self.smallest_batch if writer.workers() else self.batch_chunks):
            writer.push(piece, last=True)
        writer.flush()

    def _batch_target(self, writer: _BatchWriter) -> int:
        """How many chunks the batch being gathered should reach before it is pushed:
        `batch_chunks`, but with embedding processes the first batches start small and double,
        so every process has work within a fraction of a second instead of waiting for a whole
        batch to be planned."""
        if not writer.workers():
            return self.batch_chunks
        return min(self.batch_chunks, self.smallest_batch << writer.pushed)

    def _plan_ahead(self, files: list[Path]) -> Iterator[tuple[Path, _Planned | int | Exception]]:
        """Each file's plan, in order, made on a worker thread ahead of the writer: loading and
        redacting the next files overlaps embedding the current batch (torch releases the GIL).
        The worker stays up to two batches ahead, counted in chunks, so memory is bounded and
        the writer never waits for a batch to be planned (16 files ahead was 160 chunks: each
        256-chunk batch then waited for the rest to be redacted)."""
        ready: deque[tuple[Path, _Planned | int | Exception]] = deque()
        held = 0  # chunks planned and not yet taken
        stop = False
        changed = threading.Condition()

        def plan_all() -> None:
            nonlocal held
            for path in files:
                with changed:
                    changed.wait_for(lambda: stop or held < 2 * self.batch_chunks)
                    if stop:
                        return
                try:
                    planned: _Planned | int | Exception = self._plan(path)
                except Exception as exc:
                    planned = exc
                with changed:
                    ready.append((path, planned))
                    held += _held(planned)
                    changed.notify_all()

        worker = threading.Thread(target=plan_all, name="ingest-plan", daemon=True)
        worker.start()
        try:
            for _ in files:
                with changed:
                    changed.wait_for(lambda: ready)
                    path, planned = ready.popleft()
                    held -= _held(planned)
                    changed.notify_all()
                yield path, planned
        finally:
            with changed:
                stop = True
                changed.notify_all()
            worker.join()

    def ingest_file(self, path: Path) -> tuple[int, int, int]:
        """One file on its own. Returns (chunks added, chunks unchanged, PII spans redacted)."""
        planned = self._plan(path)
        if isinstance(planned, int):
            return 0, planned, 0
        return self._write([planned], self._embed_new([planned], None)())[0]

    def _plan(self, path: Path) -> _Planned | int:
        """Load, chunk and redact a file; for a file unchanged since the last ingest, its chunk count."""
        doc = load_file(path, self.max_bytes, self.formats)
        pii = 0
        if self.redact is not None:  # names and titles reach the catalog and Chroma's metadata
            doc, pii = self._redact_names(doc)
        file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
        known = self.catalog.document(doc.source)
        if known and known["file_hash"] == file_hash:
            return known["chunks"]
        chunks = self.chunker(doc, self.chunk_size, self.chunk_overlap)
        if self.redact is not None:
            chunks, in_chunks = _redact_chunks(chunks, self.redact)
            pii += in_chunks
        chunks = list({c.chunk_id: c for c in chunks}.values())  # identical chunks once
        document = {"source": doc.source, "file_hash": file_hash, "title": doc.title, "doc_type": doc.doc_type,
                    "chunks": len(chunks), "pii_redacted": pii}
        return _Planned(path, document, chunks, self.catalog.chunk_ids(doc.source), pii)

    def _redact_names(self, doc: LoadedDocument) -> tuple[LoadedDocument, int]:
        """The document with its file name and title redacted (headings are, with each chunk)."""
        source, in_name = self.redact_name(doc.source) if self.redact_name else (doc.source, 0)
        title, in_title = self.redact(doc.title)
        return replace(doc, source=source, title=title), in_name + len(in_title)

    def _embed_new(self, batch: list[_Planned], helper: EmbeddingProcess | None) -> Callable[[], dict]:
        """Start embedding the batch's chunks that are not stored yet: in the helper process if
        there is one, else here and now. Returns a call that gives {chunk id: vector}."""
        candidates = _new_chunks(batch)
        stored = self.store.existing(list(candidates))
        ids = [cid for cid in candidates if cid not in stored]
        texts = [candidates[cid].text for cid in ids]
        if helper is not None and helper.send(texts):

            def received() -> dict:
                try:
                    return dict(zip(ids, helper.receive()))
                except RuntimeError:  # the helper is gone (and logged why): embed the batch here
                    return dict(zip(ids, self.embedder.embed(texts)))
            return received
        vectors = dict(zip(ids, self.embedder.embed(texts)))
        return lambda: vectors

    def _write(self, batch: list[_Planned], vectors: dict) -> list[tuple[int, int, int]]:
        """Store the batch's new chunks, then make every file's new version live at once. `vectors`
        holds the new chunks' vectors as of when embedding started; any chunk stored then and
        gone since (a failed batch was rolled back) is embedded here."""
        candidates = _new_chunks(batch)
        stored = self.store.existing(list(candidates))  # identical text already stored by another file
        to_write = [c for cid, c in candidates.items() if cid not in stored]
        missing = [c for c in to_write if c.chunk_id not in vectors]
        if missing:
            vectors = {**vectors, **dict(zip([c.chunk_id for c in missing],
                                             self.embedder.embed([c.text for c in missing])))}
        written = {c.chunk_id for c in to_write}
        pending = self.catalog.begin([
            Pending(p.document["source"], sorted(p.new_ids & written), sorted(p.old_ids - p.new_ids)) for p in batch
        ])
        try:
            self.store.add(to_write, [vectors[c.chunk_id] for c in to_write])
            crash_point("ingest.vectors_written")
            self.catalog.commit([(pid, p.document, p.new_ids) for pid, p in zip(pending, batch)])
            crash_point("ingest.committed")
        except BaseException:
            # Roll back: nothing of these versions becomes visible, the previous ones stay.
            recover(self.catalog, self.store.delete)
            raise
        stale = set().union(*(p.old_ids - p.new_ids for p in batch))
        self.store.delete(sorted(self.catalog.unreferenced(stale)))
        self.catalog.finish(pending)
        return [(len(p.new_ids - p.old_ids), len(p.new_ids & p.old_ids), p.pii) for p in batch]

    def remove(self, source: str) -> int:
        """Remove a document; its chunks go too unless another document shares them."""
        count, orphans = self.catalog.remove(source)
        self.store.delete(sorted(orphans))
        return count


class _BatchWriter:
    """Writes batches behind their embedding: while the pool's processes embed the next
    batches, the earliest one is written to the vector store and the catalog. Up to two
    batches a process are in flight, so none waits for work while an earlier batch from
    another is written. Batches are written, and every file's outcome told, in order, from
    the ingesting thread."""

    def __init__(self, ingestor: Ingestor, summary: IngestSummary, tell: OnFile,
                 pool: EmbeddingPool | None) -> None:
        self.ingestor, self.summary, self.tell, self.pool = ingestor, summary, tell, pool
        self.waiting: deque[tuple[list[_Planned], Callable[[], dict]]] = deque()
        self.pushed = 0

    def workers(self) -> int:
        """Embedding processes ready to take a batch (0 without a pool)."""
        return len(self.pool.ready()) if self.pool is not None else 0

    def push(self, batch: list[_Planned], last: bool = False) -> None:
        """Start embedding the batch, then write the earliest batches until at most two per
        process are in flight (none without a pool). The `last` pieces of an ingest go to the
        least busy process and wait for `flush`."""
        if not batch:
            return
        self.pushed += 1
        if self.pool is not None and self.pushed == 2:  # more than one batch: worth the processes
            self.pool.start()
        helper = self.pool.next_ready(by_load=last) if self.pool is not None else None
        try:
            vectors = self.ingestor._embed_new(batch, helper)
        except Exception as exc:
            self.flush()
            self._failed(batch, exc)
            return
        self.waiting.append((batch, vectors))
        while not last and len(self.waiting) > 2 * self.workers():
            self._write_earliest()

    def flush(self) -> None:
        while self.waiting:
            self._write_earliest()

    def _write_earliest(self) -> None:
        batch, vectors = self.waiting.popleft()
        try:
            counts = self.ingestor._write(batch, vectors())
        except Exception as exc:  # nothing of the batch was committed; report each file
            self._failed(batch, exc)
            return
        for planned, (added, unchanged, pii) in zip(batch, counts):
            self.tell(self.summary.add(planned.path, added, unchanged, pii))

    def _failed(self, batch: list[_Planned], exc: Exception) -> None:
        for planned in batch:
            self.tell(self.summary.add(planned.path, error=_error_message(planned.path, exc)))


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


def _error_message(path: Path, exc: Exception) -> str:
    """What the summary says of a failed file: a bad file's own message, else the error's type too."""
    if isinstance(exc, BadInput):
        return str(exc)
    log.error("ingesting %s failed", path, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


def _new_chunks(batch: list[_Planned]) -> dict[str, Chunk]:
    """The batch's chunks its files' previous versions did not have, by id."""
    return {c.chunk_id: c for p in batch for c in p.chunks if c.chunk_id not in p.old_ids}


def _chunks_in(batch: list[_Planned]) -> int:
    return sum(len(p.chunks) for p in batch)


def _pieces(batch: list[_Planned], chunks: int) -> Iterator[list[_Planned]]:
    """The batch's files in runs of at least `chunks` chunks (files stay whole)."""
    piece: list[_Planned] = []
    for planned in batch:
        piece.append(planned)
        if _chunks_in(piece) >= chunks:
            yield piece
            piece = []
    if piece:
        yield piece


def _held(planned: _Planned | int | Exception) -> int:
    """Chunks a planned file holds in memory until it is written."""
    return len(planned.chunks) if isinstance(planned, _Planned) else 0


def _redact_chunks(chunks: list[Chunk], redact: Redact) -> tuple[list[Chunk], int]:
    out, count = [], 0
    headings: dict[str, str] = {}  # a document's chunks share few heading paths
    for chunk in chunks:
        text, entities = redact(chunk.text)
        count += len(entities)
        if chunk.heading not in headings:
            heading, in_heading = redact(chunk.heading) if chunk.heading else (chunk.heading, [])
            headings[chunk.heading] = heading
            count += len(in_heading)
        heading = headings[chunk.heading]
        # The id is derived from the redacted text, so no raw value shapes anything stored.
        out.append(chunk if not entities and heading == chunk.heading else Chunk(
            chunk_id(text), chunk.source, chunk.title, heading, chunk.page, chunk.index, text,
            chunk.doc_type))
    return out, count
