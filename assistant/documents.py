"""The documents service: what admins do with the knowledge base, whichever door they use."""
from __future__ import annotations

import logging
from typing import Callable, Iterable

from assistant.actor import Actor
from core.errors import NotFound
from retrieval.catalog import Catalog
from retrieval.ingest import IngestSummary, Ingestor
from retrieval.search import Retriever
from retrieval.store import Hit

log = logging.getLogger(__name__)


class DocumentService:
    def __init__(self, ingestor: Callable[[], Ingestor], catalog: Catalog, retriever: Callable[[], Retriever]) -> None:
        # Built on first use: listing documents needs neither the embedder nor Presidio.
        self._ingestor = ingestor
        self._retriever = retriever
        self.catalog = catalog

    def ingest(self, actor: Actor, paths: Iterable, on_file=None) -> IngestSummary:
        summary = self._ingestor().ingest(paths, on_file)
        log.info("%s ingested %d files (%d chunks added)", actor.id, summary.files, summary.chunks_added)
        return summary

    def list(self, actor: Actor) -> list[dict]:
        return self.catalog.documents()

    def remove(self, actor: Actor, source: str) -> int:
        """Remove a document and all its chunks; NotFound when there is none by that name."""
        removed = self._ingestor().remove(source)
        if not removed:
            raise NotFound(f"no document named {source!r} (see: helpdesk docs list)")
        log.info("%s removed %s (%d chunks)", actor.id, source, removed)
        return removed

    def search(self, actor: Actor, query: str, k: int, mode: str | None = None,
               filters: dict | None = None) -> list[Hit]:
        return self._retriever().search(query, k, mode, filters)
