"""Documents tab adapters: upload, list, remove, and try a search, all through the services."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from core.errors import NotFound
from retrieval.search import MODES

DOC_HEADERS = ["document", "chunks"]
RESULT_HEADERS = ["file", "status", "chunks added", "unchanged", "PII redacted"]
HIT_HEADERS = ["score", "document", "section", "text"]


def document_rows(services, actor) -> list[list]:
    return [[d["source"], d["chunks"]] for d in services.documents.list(actor)]


def upload(services, actor, paths: list[str], progress: Callable[[float, str], None]) -> tuple[list[list], str]:
    """Ingest the files together (batched writes), with a status line per file, in upload order."""
    done: list[dict] = []

    def on_file(outcome: dict) -> None:
        done.append(outcome)
        progress(len(done) / max(1, len(paths)), f"ingested {Path(outcome['path']).name}")

    progress(0.0, f"ingesting {len(paths)} files")
    try:
        summary = services.documents.ingest(actor, paths, on_file)
    finally:
        # The upload is the raw document: once redacted chunks are stored, keep no copy.
        for path in paths:
            Path(path).unlink(missing_ok=True)
    order = {str(Path(p)): i for i, p in enumerate(paths)}
    rows = [
        [Path(o["path"]).name, "ok" if o["status"] == "ok" else "error: " + o["error"],
         o["chunks_added"], o["chunks_unchanged"], o["pii_redacted"]]
        for o in sorted(summary.per_file, key=lambda o: order.get(str(Path(o["path"])), len(order)))
    ]
    progress(1.0, "done")
    ok = sum(1 for r in rows if r[1] == "ok")
    return rows, f"{ok} of {len(rows)} files ingested"


def remove(services, actor, source: str) -> str:
    if not source:
        return "Choose a document to remove."
    try:
        removed = services.documents.remove(actor, source)
    except NotFound:
        return f"No document named {source}."
    return f"Removed {source} ({removed} chunks)."


def search_rows(services, actor, query: str, k: int, mode: str) -> list[list]:
    if mode not in MODES:
        mode = services.settings.retrieval.mode
    hits = services.documents.search(actor, query, int(k), mode)
    return [[round(h.score, 3), h.source, h.heading, h.text] for h in hits]
