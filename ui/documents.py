"""Documents tab adapters: upload, list, remove, and try a search, all through the services."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from retrieval.search import MODES

DOC_HEADERS = ["document", "chunks"]
RESULT_HEADERS = ["file", "status", "chunks added", "unchanged", "PII redacted"]
HIT_HEADERS = ["score", "document", "section", "text"]


def document_rows(services) -> list[list]:
    return [[d["source"], d["chunks"]] for d in services.catalog.documents()]


def upload(services, paths: list[str], progress: Callable[[float, str], None]) -> tuple[list[list], str]:
    """Ingest each file on its own, so every file gets its own status line and errors stay separate."""
    rows = []
    for i, path in enumerate(paths):
        name = Path(path).name
        progress(i / max(1, len(paths)), f"ingesting {name}")
        try:
            summary = services.ingest([path])
        finally:
            # The upload is the raw document: once redacted chunks are stored, keep no copy.
            Path(path).unlink(missing_ok=True)
        if summary.errors:
            rows.append([name, "error: " + summary.errors[0]["error"], 0, 0, 0])
        else:
            rows.append([name, "ok", summary.chunks_added, summary.chunks_unchanged, summary.pii_redacted])
    progress(1.0, "done")
    ok = sum(1 for r in rows if r[1] == "ok")
    return rows, f"{ok} of {len(rows)} files ingested"


def remove(services, source: str) -> str:
    if not source:
        return "Choose a document to remove."
    removed = services.ingestor.remove(source)
    return f"Removed {source} ({removed} chunks)." if removed else f"No document named {source}."


def search_rows(services, query: str, k: int, mode: str) -> list[list]:
    if mode not in MODES:
        mode = services.settings.retrieval.mode
    hits = services.retriever.search(query, int(k), mode)
    return [[round(h.score, 3), h.source, h.heading, h.text] for h in hits]
