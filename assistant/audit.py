"""The audit log: who did what, when, through which door. Append-only, no raw PII.

Services write one row per security-relevant act (logins, token and role
changes, ingest and removal, review decisions, dataset builds, training runs,
promotions and rollbacks, erasures). The code only ever INSERTs here; an
erasure removes customer data elsewhere and leaves its own row, which names
counts and ids, never the value that was erased. Details are small dicts of
ids, names of things and counts, never message text.
"""
from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, text

from assistant.actor import Actor, require
from core.db import Migration

ACTIONS = (
    "login", "login_failed", "token_failed", "user_added", "user_removed", "role_changed", "password_reset",
    "token_created", "token_revoked", "ingest", "document_removed", "review_decision", "review_reopened",
    "dataset_built", "dataset_synthesized", "training_started", "training_cancelled", "promote", "rollback",
    "archive", "ab_started", "ab_stopped", "erasure", "purge",
)
COLUMNS = ("at", "actor", "role", "via", "action", "target", "detail")


class AuditLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, actor: Actor | None, action: str, target: str | None = None, *,
               within: Connection | None = None, **detail: Any) -> None:
        """One row; `actor` None for an anonymous caller (a failed login). `within`: the open
        transaction of the change being audited, so the change and its row commit together."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        row = {
            "id": uuid.uuid4().hex, "at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            "actor": actor.id if actor else None, "role": actor.role if actor else None,
            "via": actor.via if actor else None, "action": action, "target": target,
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
        }
        insert = text("INSERT INTO audit (id, at, actor, role, via, action, target, detail) "
                      "VALUES (:id, :at, :actor, :role, :via, :action, :target, :detail)")
        if within is not None:
            within.execute(insert, row)
            return
        with self.engine.begin() as conn:
            conn.execute(insert, row)

    def entries(self, actor: Actor, action: str | None = None, who: str | None = None, since: str | None = None,
                until: str | None = None, limit: int = 500) -> list[dict]:
        """Newest first; filters combine. Admins only."""
        require(actor, "admin")
        where, params = [], {"limit": limit}
        for key, condition, value in (("action", "action = :action", action), ("who", "actor = :who", who),
                                      ("since", "at >= :since", since), ("until", "at < :until", until)):
            if value:
                where.append(condition)
                params[key] = value
        sql = "SELECT * FROM audit" + (" WHERE " + " AND ".join(where) if where else "")
        with self.engine.connect() as conn:
            rows = conn.execute(text(sql + " ORDER BY at DESC, id DESC LIMIT :limit"), params)
            out = [dict(r._mapping) for r in rows]
        for row in out:
            row["detail"] = json.loads(row["detail"])
            row.pop("id")
        return out

    def csv(self, actor: Actor, **filters: Any) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(COLUMNS)
        for row in self.entries(actor, **filters):
            writer.writerow([row[c] if c != "detail" else json.dumps(row[c], sort_keys=True) for c in COLUMNS])
        return buf.getvalue()


def m001_audit(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE audit (
            id VARCHAR(32) PRIMARY KEY,
            at VARCHAR(40) NOT NULL,
            actor VARCHAR(200),
            role VARCHAR(20),
            via VARCHAR(10),
            action VARCHAR(40) NOT NULL,
            target VARCHAR(300),
            detail TEXT NOT NULL
        )"""))
    conn.execute(text("CREATE INDEX ix_audit_at ON audit (at)"))
    conn.execute(text("CREATE INDEX ix_audit_action ON audit (action, at)"))


MIGRATIONS: list[Migration] = [("assistant.audit.001", m001_audit)]
