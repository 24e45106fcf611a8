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
from sqlalchemy.exc import IntegrityError

from core.db import Migration
from core.errors import NotFound


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
    # What retraining needs to rebuild the turn (None on rows logged before they were kept):
    messages: list[dict] | None = None  # the chat messages as the model saw (or would have seen) them
    raw_answer: str | None = None  # the model's own answer before the output checks, PII redacted
    generation: dict | None = None  # model, adapter and settings reported by the call that served
    actor: dict | None = None  # who asked: {"id", "role", "via"}
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="microseconds"))

    @property
    def flagged(self) -> bool:
        return self.action in ("flag", "handoff", "block")

    @property
    def review_reasons(self) -> list[str]:
        """Why a human should look at this turn (down-votes add theirs later)."""
        out = {"flag": ["flagged"], "handoff": ["handed_off"], "block": ["blocked"]}.get(self.action, [])
        if any(r.startswith("ungrounded") for r in self.reasons):  # the shown answer, not a draft
            out.append("low_groundedness")
        return out


_JSON_COLUMNS = ("reasons", "input_verdict", "output_verdict", "sources", "latency_ms", "messages", "generation",
                 "actor", "review_reasons")
_DERIVED = ("flagged", "needs_review", "review_reasons")
_COLUMNS = ("id", "session_id", "created_at", "redacted_input", "answer", "action", "prompt_version", "model",
            "adapter", "answer_mode", "raw_answer", *_JSON_COLUMNS, "flagged", "needs_review")


class Store:
    """The exchange log on an engine whose tables `assistant.database.open_database` created."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def log_exchange(self, record: ExchangeRecord) -> str:
        """The one write per turn."""
        row: dict[str, Any] = {k: getattr(record, k) for k in _COLUMNS if k not in _DERIVED}
        row["review_reasons"] = record.review_reasons
        for key in _JSON_COLUMNS:
            row[key] = json.dumps(row[key], ensure_ascii=False)
        row["flagged"] = int(record.flagged)
        row["needs_review"] = int(bool(record.review_reasons))
        with self.engine.begin() as conn:
            conn.execute(text(
                f"INSERT INTO exchanges ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})"
            ), row)
        return record.id

    def exchange(self, exchange_id: str) -> dict | None:
        """One exchange as stored, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM exchanges WHERE id = :id"), {"id": exchange_id}).first()
        return _decoded(dict(row._mapping)) if row is not None else None

    def exchanges(self, limit: int = 20, session_id: str | None = None) -> list[dict]:
        """Newest first, as stored (JSON columns decoded)."""
        query = "SELECT * FROM exchanges"
        params: dict[str, Any] = {"limit": limit}
        if session_id is not None:
            query += " WHERE session_id = :sid"
            params["sid"] = session_id
        query += " ORDER BY created_at DESC, id DESC LIMIT :limit"
        with self.engine.connect() as conn:
            return [_decoded(dict(r._mapping)) for r in conn.execute(text(query), params)]

    def own_session(self, session_id: str, owner: str) -> None:
        """A conversation belongs to whoever started it: claim a new one for `owner`, and refuse
        anyone else one that exists (NotFound, so an id reveals nothing about its owner)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(text("INSERT INTO conversations (id, owner, created_at) VALUES (:id, :o, :t)"),
                             {"id": session_id, "o": owner, "t": datetime.now(timezone.utc).isoformat()})
            return
        except IntegrityError:  # it exists (perhaps claimed a moment ago by a concurrent request)
            pass
        if self.session_owner(session_id) != owner:
            raise NotFound(f"no conversation {session_id!r}")

    def session_owner(self, session_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT owner FROM conversations WHERE id = :id"), {"id": session_id}).scalar()

    def conversation(self, session_id: str, owner: str) -> list[dict]:
        """The owner's conversation, oldest turn first; NotFound for anyone else."""
        if self.session_owner(session_id) != owner:
            raise NotFound(f"no conversation {session_id!r}")
        return list(reversed(self.exchanges(limit=10_000, session_id=session_id)))

    def history(self, session_id: str, turns: int) -> list[tuple[str, str]]:
        """The session's last `turns` (redacted question, answer) pairs, oldest first.
        Blocked turns are left out: their text should not steer the model."""
        if turns <= 0:
            return []
        rows = [r for r in self.exchanges(limit=turns * 3, session_id=session_id) if r["action"] != "block"]
        return [(r["redacted_input"], r["answer"]) for r in reversed(rows[:turns])]


def _decoded(row: dict) -> dict:
    for key in _JSON_COLUMNS:
        row[key] = json.loads(row[key]) if row[key] is not None else None
    row["flagged"] = bool(row["flagged"])
    row["needs_review"] = bool(row["needs_review"])
    return row


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


def m005_exchange_record(conn: Connection) -> None:
    """Enough to rebuild the turn for retraining, and why it needs a reviewer; older rows keep
    NULLs (and are queued for review by their `flagged` column)."""
    for column in ("messages", "raw_answer", "generation", "actor", "review_reasons"):
        conn.execute(text(f"ALTER TABLE exchanges ADD COLUMN {column} TEXT"))
    conn.execute(text("ALTER TABLE exchanges ADD COLUMN needs_review INTEGER NOT NULL DEFAULT 0"))
    conn.execute(text("UPDATE exchanges SET needs_review = flagged"))
    conn.execute(text("CREATE INDEX ix_exchanges_review ON exchanges (needs_review, created_at)"))


def m006_conversations(conn: Connection) -> None:
    """Who owns each conversation; one logged before owners were kept goes to its first asker."""
    conn.execute(text("CREATE TABLE conversations (id VARCHAR(128) PRIMARY KEY, owner VARCHAR(200) NOT NULL, "
                      "created_at VARCHAR(40) NOT NULL)"))
    conn.execute(text("CREATE INDEX ix_conversations_owner ON conversations (owner)"))
    first: dict[str, tuple[str, str]] = {}
    for sid, at, actor in conn.execute(text("SELECT session_id, created_at, actor FROM exchanges "
                                            "ORDER BY created_at DESC")):
        first[sid] = (at, (json.loads(actor) or {}).get("id", "unknown") if actor else "unknown")
    for sid, (at, owner) in first.items():
        conn.execute(text("INSERT INTO conversations (id, owner, created_at) VALUES (:id, :o, :t)"),
                     {"id": sid, "o": owner, "t": at})


MIGRATIONS: list[Migration] = [
    ("001_exchanges", m001_exchanges),
    ("004_answer_mode", m004_answer_mode),
    ("assistant.005_exchange_record", m005_exchange_record),
    ("assistant.006_conversations", m006_conversations),
]
