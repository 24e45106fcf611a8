"""The knowledge-base catalog in SQL: which documents are ingested and which chunks are live.

Chroma holds vectors; the catalog is the truth about what is in the knowledge
base. A file is ingested whole or not at all: its new chunks are written to
Chroma first, then one SQL transaction makes them live, then stale chunks are
deleted. A `pending_ingests` row records each step, so a crash or a kill at any
point is rolled back or finished by `recover()`, and until then search ignores
chunks the catalog does not know.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Iterable, NamedTuple, Sequence

from sqlalchemy import Connection, Engine, bindparam, text

from core.db import Migration


# No ORDER BY: with one, SQLite walks the (collection, source) index over the whole
# collection instead of looking the ids up (20 ms instead of 0.5 at 100k chunks).
LIVE_SQL = "SELECT chunk_id, source FROM document_chunks WHERE collection = :c AND chunk_id IN :ids"


class Pending(NamedTuple):
    """One file's ingest before it is committed: the chunk ids it writes, and those it may orphan."""

    source: str
    added: Sequence[str]
    removable: Sequence[str]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Catalog:
    def __init__(self, engine: Engine, collection: str) -> None:
        self.engine = engine
        self.collection = collection

    # -- reading ---------------------------------------------------------------------------
    def document(self, source: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT * FROM documents WHERE collection = :c AND source = :s"),
                {"c": self.collection, "s": source},
            ).first()
        return dict(row._mapping) if row else None

    def documents(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT * FROM documents WHERE collection = :c ORDER BY source"), {"c": self.collection}
            )
            return [dict(r._mapping) for r in rows]

    def chunk_ids(self, source: str) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT chunk_id FROM document_chunks WHERE collection = :c AND source = :s"),
                {"c": self.collection, "s": source},
            )
            return {r[0] for r in rows}

    def live(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """For each id the catalog knows: the documents it belongs to (identical chunks are shared)."""
        ids = list(ids)
        if not ids:
            return {}
        query = text(LIVE_SQL).bindparams(bindparam("ids", expanding=True))
        out: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for chunk_id, source in conn.execute(query, {"c": self.collection, "ids": ids}):
                out.setdefault(chunk_id, []).append(source)
        return {chunk_id: sorted(sources) for chunk_id, sources in out.items()}

    # -- writing, in the order an ingest takes ---------------------------------------------------
    # Each takes a batch of files: one transaction per step for all of them, not one per file.
    def begin(self, entries: Sequence[Pending]) -> list[str]:
        """Record the ingests about to write vectors; returns their pending ids, in order."""
        ids = [uuid.uuid4().hex for _ in entries]
        if entries:
            with self.engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO pending_ingests (id, collection, source, state, added_ids, removable_ids, "
                    "started_at) VALUES (:id, :c, :s, 'writing', :a, :r, :t)"
                ), [{"id": pid, "c": self.collection, "s": e.source, "a": json.dumps(list(e.added)),
                     "r": json.dumps(list(e.removable)), "t": _now()} for pid, e in zip(ids, entries)])
        return ids

    def commit(self, versions: Sequence[tuple[str, dict, Iterable[str]]]) -> None:
        """One transaction for (pending id, document row, chunk ids) of each file: each
        document row and its chunk list are replaced, and the new chunks are live."""
        if not versions:
            return
        where = "WHERE collection = :c AND source = :s"
        with self.engine.begin() as conn:
            sources = [{"c": self.collection, "s": doc["source"]} for _, doc, _ in versions]
            conn.execute(text(f"DELETE FROM document_chunks {where}"), sources)
            conn.execute(text(f"DELETE FROM documents {where}"), sources)
            conn.execute(
                text("INSERT INTO document_chunks (collection, chunk_id, source) VALUES (:c, :id, :s)"),
                [{"c": self.collection, "id": cid, "s": doc["source"]}
                 for _, doc, chunk_ids in versions for cid in sorted(set(chunk_ids))],
            )
            conn.execute(text(
                "INSERT INTO documents (collection, source, file_hash, title, doc_type, chunks, pii_redacted, "
                "ingested_at) VALUES (:c, :source, :file_hash, :title, :doc_type, :chunks, :pii_redacted, :t)"
            ), [{"c": self.collection, "t": _now(), **doc} for _, doc, _ in versions])
            conn.execute(text("UPDATE pending_ingests SET state = 'committed' WHERE id = :id"),
                         [{"id": pid} for pid, _, _ in versions])

    def finish(self, pending_ids: Sequence[str]) -> None:
        if pending_ids:
            with self.engine.begin() as conn:
                conn.execute(text("DELETE FROM pending_ingests WHERE id = :id"), [{"id": p} for p in pending_ids])

    def remove(self, source: str) -> tuple[int, set[str]]:
        """Forget a document; returns its chunk count and the chunk ids no other document shares."""
        ids = self.chunk_ids(source)
        with self.engine.begin() as conn:
            gone = conn.execute(text("DELETE FROM documents WHERE collection = :c AND source = :s"),
                                {"c": self.collection, "s": source}).rowcount
            conn.execute(text("DELETE FROM document_chunks WHERE collection = :c AND source = :s"),
                         {"c": self.collection, "s": source})
        if not gone:
            return 0, set()
        return len(ids), ids - set(self.live(ids))

    def unreferenced(self, ids: Iterable[str]) -> set[str]:
        ids = set(ids)
        return ids - set(self.live(ids))

    def pending(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM pending_ingests WHERE collection = :c"), {"c": self.collection})
            return [dict(r._mapping) for r in rows]


def recover(catalog: Catalog, delete_vectors) -> int:
    """Finish or roll back ingests that a crash interrupted; returns how many there were.

    'writing': the new chunks never became live, so delete those no document uses.
    'committed': the new version is live; delete the old chunks no document uses.
    """
    interrupted = catalog.pending()
    for row in interrupted:
        key = "added_ids" if row["state"] == "writing" else "removable_ids"
        delete_vectors(sorted(catalog.unreferenced(json.loads(row[key]))))
        catalog.finish([row["id"]])
    return len(interrupted)


# Tables this module owns (see core.db): append only, never edit one that has shipped.
def m002_documents(conn: Connection) -> None:
    """The knowledge base's catalog: Chroma holds vectors, these tables say what is live."""
    conn.execute(text("""
        CREATE TABLE documents (
            collection TEXT NOT NULL,
            source TEXT NOT NULL,
            file_hash TEXT NOT NULL,
            title TEXT NOT NULL,
            doc_type TEXT NOT NULL,
            chunks INTEGER NOT NULL,
            pii_redacted INTEGER NOT NULL,
            ingested_at TEXT NOT NULL,
            PRIMARY KEY (collection, source)
        )"""))
    conn.execute(text("""
        CREATE TABLE document_chunks (
            collection TEXT NOT NULL,
            chunk_id TEXT NOT NULL,
            source TEXT NOT NULL,
            PRIMARY KEY (collection, chunk_id, source)
        )"""))
    conn.execute(text("CREATE INDEX ix_document_chunks_source ON document_chunks (collection, source)"))
    conn.execute(text("""
        CREATE TABLE pending_ingests (
            id TEXT PRIMARY KEY,
            collection TEXT NOT NULL,
            source TEXT NOT NULL,
            state TEXT NOT NULL,
            added_ids TEXT NOT NULL,
            removable_ids TEXT NOT NULL,
            started_at TEXT NOT NULL
        )"""))


MIGRATIONS: list[Migration] = [("002_documents", m002_documents)]
