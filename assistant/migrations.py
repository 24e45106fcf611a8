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


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("001_exchanges", m001_exchanges),
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
