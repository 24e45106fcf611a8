"""The store: exchanges (and later feedback, flags, users, audit) in SQL.

SQLite by default; any SQLAlchemy URL (PostgreSQL) works with the same code.
Only redacted text is ever written here.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, text

from core.db import Migration


@dataclass(frozen=True)
class ExchangeRecord:
    session_id: str
    redacted_input: str
    answer: str
    action: str
    reasons: list[str]
    input_verdict: dict
    output_verdict: dict | None
    sources: list[dict]
    prompt_version: str
    model: str | None
    adapter: str | None
    latency_ms: dict[str, float]
    answer_mode: str | None = None  # generate | extractive; None for a fixed reply
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="microseconds"))

    @property
    def flagged(self) -> bool:
        return self.action in ("flag", "handoff", "block")


_JSON_COLUMNS = ("reasons", "input_verdict", "output_verdict", "sources", "latency_ms")


class Store:
    """The exchange log on an engine whose tables `assistant.database.open_database` created."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def log_exchange(self, record: ExchangeRecord) -> str:
        """The one write per turn."""
        row: dict[str, Any] = {k: getattr(record, k) for k in (
            "id", "session_id", "created_at", "redacted_input", "answer", "action", "prompt_version",
            "model", "adapter", "answer_mode")}
        for key in _JSON_COLUMNS:
            row[key] = json.dumps(getattr(record, key), ensure_ascii=False)
        row["flagged"] = int(record.flagged)
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO exchanges (id, session_id, created_at, redacted_input, answer, action, reasons, "
                "input_verdict, output_verdict, sources, prompt_version, model, adapter, latency_ms, flagged, "
                "answer_mode) VALUES (:id, :session_id, :created_at, :redacted_input, :answer, :action, :reasons, "
                ":input_verdict, :output_verdict, :sources, :prompt_version, :model, :adapter, :latency_ms, :flagged, "
                ":answer_mode)"
            ), row)
        return record.id

    def exchanges(self, limit: int = 20, session_id: str | None = None) -> list[dict]:
        """Newest first, as stored (JSON columns decoded)."""
        query = "SELECT * FROM exchanges"
        params: dict[str, Any] = {"limit": limit}
        if session_id is not None:
            query += " WHERE session_id = :sid"
            params["sid"] = session_id
        query += " ORDER BY created_at DESC, id DESC LIMIT :limit"
        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(text(query), params)]
        for row in rows:
            for key in _JSON_COLUMNS:
                row[key] = json.loads(row[key]) if row[key] is not None else None
            row["flagged"] = bool(row["flagged"])
        return rows

    def history(self, session_id: str, turns: int) -> list[tuple[str, str]]:
        """The session's last `turns` (redacted question, answer) pairs, oldest first.
        Blocked turns are left out: their text should not steer the model."""
        if turns <= 0:
            return []
        rows = [r for r in self.exchanges(limit=turns * 3, session_id=session_id) if r["action"] != "block"]
        return [(r["redacted_input"], r["answer"]) for r in reversed(rows[:turns])]


# Tables this module owns (see core.db): append only, never edit one that has shipped.
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

def m004_answer_mode(conn: Connection) -> None:
    """Which path produced the answer shown: generate or extractive (NULL: a fixed reply)."""
    conn.execute(text("ALTER TABLE exchanges ADD COLUMN answer_mode TEXT"))


MIGRATIONS: list[Migration] = [
    ("001_exchanges", m001_exchanges),
    ("004_answer_mode", m004_answer_mode),
]
