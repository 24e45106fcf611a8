"""Schema migrations: an append-only, numbered list. Never edit one that has shipped;
add a new function at the end. `schema_migrations` records which have run."""
from __future__ import annotations

from typing import Callable

from sqlalchemy import Connection, text


def m001_exchanges(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE exchanges (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            redacted_input TEXT NOT NULL,
            answer TEXT NOT NULL,
            action TEXT NOT NULL,
            reasons TEXT NOT NULL,
            input_verdict TEXT NOT NULL,
            output_verdict TEXT,
            sources TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            model TEXT,
            adapter TEXT,
            latency_ms TEXT NOT NULL,
            flagged INTEGER NOT NULL DEFAULT 0
        )"""))
    conn.execute(text("CREATE INDEX ix_exchanges_session ON exchanges (session_id, created_at)"))
    conn.execute(text("CREATE INDEX ix_exchanges_flagged ON exchanges (flagged, created_at)"))


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


def m003_vault(conn: Connection) -> None:
    """Per-conversation pseudonym maps, encrypted; the key is never stored here."""
    conn.execute(text("""
        CREATE TABLE vault (
            session_id TEXT PRIMARY KEY,
            ciphertext TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )"""))
    conn.execute(text("CREATE INDEX ix_vault_expires ON vault (expires_at)"))
    conn.execute(text("CREATE TABLE vault_meta (key_check TEXT NOT NULL)"))


def m004_answer_mode(conn: Connection) -> None:
    """Which path produced the answer shown: generate or extractive (NULL: a fixed reply)."""
    conn.execute(text("ALTER TABLE exchanges ADD COLUMN answer_mode TEXT"))


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("001_exchanges", m001_exchanges),
    ("002_documents", m002_documents),
    ("003_vault", m003_vault),
    ("004_answer_mode", m004_answer_mode),
]


def migrate(conn: Connection) -> list[str]:
    """Run the migrations not yet applied, in order; returns their names."""
    conn.execute(text(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    ))
    done = {row[0] for row in conn.execute(text("SELECT name FROM schema_migrations"))}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        step(conn)
        conn.execute(
            text("INSERT INTO schema_migrations (name, applied_at) VALUES (:n, CURRENT_TIMESTAMP)"), {"n": name}
        )
        applied.append(name)
    return applied
