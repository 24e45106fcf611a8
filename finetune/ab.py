"""A/B tests: a candidate adapter serves a set share of conversations, the rest get what is promoted.

The arm is a hash of the test and the conversation id, so a conversation keeps its
arm on every turn and across server restarts, and needs no table row of its own.
At most one test runs at a time; each exchange records the adapter that served it,
which is what the per-arm figures are computed from (`assistant.monitoring`).
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, text

from core.db import Migration
from core.errors import BadInput, Conflict


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def in_candidate_arm(test_id: str, session_id: str, share: float) -> bool:
    """Sticky per conversation: the same session always falls on the same side."""
    digest = hashlib.sha256(f"{test_id}:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


class ABTests:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def active(self) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM ab_tests WHERE stopped_at IS NULL")).first()
        return dict(row._mapping) if row else None

    def latest(self) -> dict | None:
        """The running test, or else the one that stopped last."""
        with self.engine.connect() as conn:
            row = conn.execute(text(
                "SELECT * FROM ab_tests ORDER BY CASE WHEN stopped_at IS NULL THEN 1 ELSE 0 END DESC, "
                "started_at DESC LIMIT 1")).first()
        return dict(row._mapping) if row else None

    def start(self, candidate: str, share: float, actor: str, baseline: str | None) -> dict:
        if not 0 < share < 1:
            raise BadInput("--share must be between 0 and 1 (the candidate's share of conversations)")
        if candidate == baseline:
            raise Conflict(f"adapter {candidate} is already serving: test a candidate against it")
        test_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            if conn.execute(text("SELECT 1 FROM ab_tests WHERE stopped_at IS NULL")).first():
                raise Conflict("an A/B test is already running: `helpdesk ab stop` it first")
            conn.execute(text(
                "INSERT INTO ab_tests (id, candidate, baseline, share, started_by, started_at) "
                "VALUES (:id, :c, :b, :s, :by, :at)"),
                {"id": test_id, "c": candidate, "b": baseline, "s": share, "by": actor, "at": _now()})
        return self.active()

    def stop(self, actor: str) -> dict:
        with self.engine.begin() as conn:
            stopped = conn.execute(text(
                "UPDATE ab_tests SET stopped_at = :at, stopped_by = :by WHERE stopped_at IS NULL"),
                {"at": _now(), "by": actor}).rowcount
        if not stopped:
            raise Conflict("no A/B test is running")
        return self.latest()

    def candidate_for(self, session_id: str | None) -> str | None:
        """The candidate's version when this conversation is in its arm, else None."""
        test = self.active()
        if test is None or not session_id or not in_candidate_arm(test["id"], session_id, test["share"]):
            return None
        return test["candidate"]


def m001_ab_tests(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE ab_tests (
            id VARCHAR(32) PRIMARY KEY,
            candidate VARCHAR(80) NOT NULL,
            baseline VARCHAR(80),
            share REAL NOT NULL,
            started_by VARCHAR(200) NOT NULL,
            started_at VARCHAR(40) NOT NULL,
            stopped_by VARCHAR(200),
            stopped_at VARCHAR(40)
        )"""))


MIGRATIONS: list[Migration] = [("finetune.004_ab_tests", m001_ab_tests)]
