"""The documents service: what admins do with the knowledge base, whichever door they use."""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from assistant.actor import Actor, require
from assistant.audit import AuditLog
from core.errors import NotFound
from retrieval.catalog import Catalog
from retrieval.ingest import IngestSummary, Ingestor
from retrieval.search import Retriever
from retrieval.store import Hit

log = logging.getLogger(__name__)


class DocumentService:
    """Admins ingest and remove; reviewers may look (list, search); agents reach none of it."""

    def __init__(self, ingestor: Callable[[], Ingestor], catalog: Catalog, retriever: Callable[[], Retriever],
                 audit: AuditLog | None = None) -> None:
        # Built on first use: listing documents needs neither the embedder nor Presidio.
        self._ingestor = ingestor
        self._retriever = retriever
        self.catalog = catalog
        self.audit = audit

    def ingest(self, actor: Actor, paths: Iterable, on_file=None) -> IngestSummary:
        require(actor, "admin")
        summary = self._ingestor().ingest(paths, on_file)
        if self.audit is not None:  # file names as stored: redacted when they held personal data
            self.audit.record(actor, "ingest", None, files=summary.files, chunks_added=summary.chunks_added,
                              errors=len(summary.errors))
        log.info("%s ingested %d files (%d chunks added)", actor.id, summary.files, summary.chunks_added)
        return summary

    def list(self, actor: Actor) -> list[dict]:
        require(actor, "reviewer")
        return self.catalog.documents()

    def remove(self, actor: Actor, source: str) -> int:
        """Remove a document and all its chunks; NotFound when there is none by that name."""
        require(actor, "admin")
        removed = self._ingestor().remove(source)
        if not removed:
            raise NotFound(f"no document named {source!r} (see: helpdesk docs list)")
        if self.audit is not None:
            self.audit.record(actor, "document_removed", source, chunks=removed)
        log.info("%s removed %s (%d chunks)", actor.id, source, removed)
        return removed

    def search(self, actor: Actor, query: str, k: int, mode: str | None = None,
               filters: dict | None = None) -> list[Hit]:
        require(actor, "reviewer")
        return self._retriever().search(query, k, mode, filters)
