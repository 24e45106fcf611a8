"""The review queue: exchanges that need a human, claimed under an expiring lock, decided.

An exchange is in the queue when its turn was flagged, handed off, blocked or
shown with low groundedness (`exchanges.needs_review`, set when it is logged),
or when its current feedback holds a down-vote. Nothing is written for an
item until a reviewer touches it: `review_items` holds the claim and the
decision, `review_decisions` every decision ever made (and reopenings), with
who and when.

A claim is a conditional UPDATE, so of two reviewers claiming one item at
once exactly one wins, on SQLite and PostgreSQL alike; an expired claim can
be taken by anyone.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from assistant.actor import Actor, require
from assistant.audit import AuditLog
from assistant.feedback import FeedbackService
from assistant.labels import parse_label
from assistant.store import Store
from core.db import Migration
from core.errors import BadInput, Conflict, NotFound

STATUSES = ("pending", "claimed", "done")
DECISIONS = ("approve", "correct", "reject", "false_alarm", "escalate")
REASONS = ("flagged", "handed_off", "blocked", "low_groundedness", "down_voted")
MAX_ANSWER_CHARS = 4000

# The item's status as reviewers see it: a claim past its expiry is pending again.
_STATUS_SQL = ("CASE WHEN r.status = 'done' THEN 'done' "
               "WHEN r.status = 'claimed' AND r.claim_expires_at > :now THEN 'claimed' ELSE 'pending' END")
_RATING_SQL = ("(SELECT MIN(f.rating) FROM feedback f "  # 'down' < 'up': any down-vote wins
               "WHERE f.exchange_id = e.id AND f.superseded_at IS NULL)")
_QUEUE_SQL = f"""
    SELECT e.id AS exchange_id, e.session_id, e.created_at, e.action, e.adapter, e.review_reasons, e.flagged,
           {_STATUS_SQL} AS status, {_RATING_SQL} AS rating,
           r.claimed_by, r.claim_expires_at, r.decision, r.decided_by, r.decided_at
    FROM exchanges e LEFT JOIN review_items r ON r.exchange_id = e.id
    WHERE (e.needs_review = 1 OR {_RATING_SQL} = 'down')
"""


def _utc(at: datetime | None = None) -> str:
    return (at or datetime.now(timezone.utc)).isoformat(timespec="microseconds")


def _item(row: dict) -> dict:
    reasons = json.loads(row.pop("review_reasons") or "null")
    if reasons is None:  # logged before review reasons were kept
        reasons = ["flagged"] if row["flagged"] else []
    if row["rating"] == "down":
        reasons.append("down_voted")
    row.pop("flagged")
    row["reasons"] = reasons
    return row


class ReviewService:
    def __init__(self, engine: Engine, store: Store, feedback: FeedbackService, redact: Callable[[str], str],
                 claim_minutes: float = 15, on_label: Callable[[dict, dict], None] | None = None,
                 audit: AuditLog | None = None) -> None:
        self.engine = engine
        self.store = store
        self.feedback = feedback
        self.redact = redact
        self.claim_minutes = claim_minutes
        # Called with (exchange row, decision) when a decision labels a guardrail check.
        self.on_label = on_label
        self.audit = audit

    def queue(self, actor: Actor, status: str | None = None, reason: str | None = None, action: str | None = None,
              rating: str | None = None, adapter: str | None = None, since: str | None = None,
              until: str | None = None, limit: int = 200) -> list[dict]:
        """Items, oldest first (the order they should be worked), with the filters applied."""
        require(actor, "reviewer")
        if status is not None and status not in STATUSES:
            raise BadInput(f"status must be one of {', '.join(STATUSES)}")
        if reason is not None and reason not in REASONS:
            raise BadInput(f"reason must be one of {', '.join(REASONS)}")
        query = f"SELECT * FROM ({_QUEUE_SQL}) q WHERE 1 = 1"
        params: dict = {"now": _utc()}
        for column, value in (("status", status), ("action", action), ("rating", rating), ("adapter", adapter)):
            if value:
                query += f" AND q.{column} = :{column}"
                params[column] = value
        if since:
            query += " AND q.created_at >= :since"
            params["since"] = since
        if until:
            query += " AND q.created_at < :until"
            params["until"] = until
        query += " ORDER BY q.created_at, q.exchange_id"
        with self.engine.connect() as conn:
            rows = [_item(dict(r._mapping)) for r in conn.execute(text(query), params)]
        if reason:
            rows = [r for r in rows if reason in r["reasons"]]
        return rows[:limit]

    def counts(self, actor: Actor) -> dict:
        """Items per status and per reason, across the whole queue."""
        require(actor, "reviewer")
        items = self.queue(actor, limit=10**9)
        by_status = {s: sum(1 for i in items if i["status"] == s) for s in STATUSES}
        by_reason = {r: sum(1 for i in items if r in i["reasons"] and i["status"] != "done") for r in REASONS}
        return {"status": by_status, "open_by_reason": by_reason, "total": len(items)}

    def _queued(self, exchange_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(text(f"SELECT * FROM ({_QUEUE_SQL}) q WHERE q.exchange_id = :e"),
                               {"now": _utc(), "e": exchange_id}).first()
        if row is None:
            if self.store.exchange(exchange_id) is None:
                raise NotFound(f"no exchange {exchange_id}")
            raise NotFound(f"exchange {exchange_id} is not in the review queue")
        return _item(dict(row._mapping))

    def decided(self) -> list[dict]:
        """Every decided item with its reference answer: what datasets are built from."""
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(
                "SELECT exchange_id, decision, answer, decided_by, decided_at FROM review_items "
                "WHERE status = 'done' ORDER BY decided_at"))]

    def item(self, exchange_id: str) -> dict | None:
        """The queue item for an exchange, or None when it needs no review."""
        try:
            return self._queued(exchange_id)
        except NotFound:
            return None

    def show(self, actor: Actor, exchange_id: str) -> dict:
        """The item, its exchange record, the whole conversation, feedback and decision history."""
        require(actor, "reviewer")
        item = self._queued(exchange_id)
        record = self.store.exchange(exchange_id)
        conversation = list(reversed(self.store.exchanges(limit=200, session_id=record["session_id"])))
        with self.engine.connect() as conn:
            decisions = [dict(r._mapping) for r in conn.execute(text(
                "SELECT decision, actor_id, note, answer, created_at FROM review_decisions "
                "WHERE exchange_id = :e ORDER BY created_at"), {"e": exchange_id})]
        return {**item, "exchange": record, "conversation": conversation,
                "feedback": self.feedback.for_exchange(exchange_id), "decisions": decisions}

    def claim(self, actor: Actor, exchange_id: str) -> dict:
        """Take the item for `claim_minutes`; refused while another reviewer's claim holds."""
        require(actor, "reviewer")
        self._queued(exchange_id)
        at = datetime.now(timezone.utc)
        params = {"e": exchange_id, "a": actor.id, "now": _utc(at),
                  "exp": _utc(at + timedelta(minutes=self.claim_minutes))}
        with self.engine.begin() as conn:
            taken = conn.execute(text(
                "UPDATE review_items SET status = 'claimed', claimed_by = :a, claim_expires_at = :exp, "
                "updated_at = :now WHERE exchange_id = :e AND status <> 'done' "
                "AND (status = 'pending' OR claimed_by = :a OR claim_expires_at <= :now)"
            ), params).rowcount
        if not taken:
            try:
                with self.engine.begin() as conn:
                    conn.execute(text(
                        "INSERT INTO review_items (exchange_id, status, claimed_by, claim_expires_at, updated_at) "
                        "VALUES (:e, 'claimed', :a, :exp, :now)"), params)
            except IntegrityError:  # the row exists: someone holds it, or it is done
                item = self._queued(exchange_id)
                if item["status"] == "done":
                    raise Conflict(f"exchange {exchange_id} is already decided ({item['decision']}); "
                                   "reopen it first") from None
                raise Conflict(f"exchange {exchange_id} is claimed by {item['claimed_by']} until "
                               f"{item['claim_expires_at']}") from None
        return self._queued(exchange_id)

    def decide(self, actor: Actor, exchange_id: str, decision: str, answer: str | None = None,
               note: str | None = None, label: str | None = None) -> dict:
        """Record a decision (claiming the item first if it is free). `correct` needs the
        answer that becomes the reference; it is redacted like any typed text. `label`
        (`check:label`, e.g. `injection:attack` for a missed attack) labels the message for
        a guardrail check."""
        require(actor, "reviewer")
        if decision not in DECISIONS:
            raise BadInput(f"decision must be one of {', '.join(DECISIONS)}")
        if label:
            try:
                parse_label(label)
            except ValueError as exc:
                raise BadInput(str(exc)) from None
        answer = (answer or "").strip() or None
        if decision == "correct" and answer is None:
            raise BadInput("a correction needs the corrected answer")
        for value, what in ((answer, "answer"), (note, "note")):
            if value is not None and len(value) > MAX_ANSWER_CHARS:
                raise BadInput(f"the {what} is over {MAX_ANSWER_CHARS} characters")
        item = self.claim(actor, exchange_id)
        record = self.store.exchange(exchange_id)
        stored_answer = self.redact(answer) if answer is not None else None
        stored_note = self.redact(note) if note else None
        if decision == "approve":
            stored_answer = record["answer"]  # the answer shown is the reference
        at = _utc()
        with self.engine.begin() as conn:
            done = conn.execute(text(
                "UPDATE review_items SET status = 'done', decision = :d, decided_by = :a, decided_at = :at, "
                "answer = :answer, note = :note, claimed_by = NULL, claim_expires_at = NULL, updated_at = :at "
                "WHERE exchange_id = :e AND status = 'claimed' AND claimed_by = :a"
            ), {"d": decision, "a": actor.id, "at": at, "answer": stored_answer, "note": stored_note,
                "e": exchange_id}).rowcount
            if not done:  # the claim expired and someone else took it between the two statements
                raise Conflict(f"exchange {exchange_id} is no longer claimed by {actor.id}")
            self._history(conn, exchange_id, decision, actor, stored_note, stored_answer, at)
        if self.audit is not None:
            self.audit.record(actor, "review_decision", exchange_id, decision=decision, label=label)
        if (decision == "false_alarm" or label) and self.on_label is not None:
            self.on_label(record, {"decision": decision, "label": label, "reasons": item["reasons"], "by": actor.id,
                                   "at": at})
        return self._queued(exchange_id)

    def reopen(self, actor: Actor, exchange_id: str, note: str | None = None) -> dict:
        """Put a decided item back in the queue; its decision stays in the history."""
        require(actor, "reviewer")
        self._queued(exchange_id)
        at = _utc()
        stored_note = self.redact(note) if note else None
        with self.engine.begin() as conn:
            changed = conn.execute(text(
                "UPDATE review_items SET status = 'pending', decision = NULL, decided_by = NULL, decided_at = NULL, "
                "answer = NULL, note = NULL, updated_at = :at WHERE exchange_id = :e AND status = 'done'"
            ), {"at": at, "e": exchange_id}).rowcount
            if not changed:
                raise Conflict(f"exchange {exchange_id} has no decision to reopen")
            self._history(conn, exchange_id, "reopen", actor, stored_note, None, at)
        if self.audit is not None:
            self.audit.record(actor, "review_reopened", exchange_id)
        return self._queued(exchange_id)

    def next_pending(self, actor: Actor, after: str | None = None, **filters) -> dict | None:
        """The oldest pending item (after `after`, if given) matching the filters: "decide and next"."""
        require(actor, "reviewer")
        items = [i for i in self.queue(actor, status="pending", **filters) if i["exchange_id"] != after]
        return items[0] if items else None

    @staticmethod
    def _history(conn: Connection, exchange_id: str, decision: str, actor: Actor, note: str | None,
                 answer: str | None, at: str) -> None:
        conn.execute(text(
            "INSERT INTO review_decisions (id, exchange_id, decision, actor_id, actor_role, note, answer, created_at) "
            "VALUES (:id, :e, :d, :a, :role, :note, :answer, :at)"
        ), {"id": uuid.uuid4().hex, "e": exchange_id, "d": decision, "a": actor.id, "role": actor.role,
            "note": note, "answer": answer, "at": at})


def m001_review(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE review_items (
            exchange_id VARCHAR(32) PRIMARY KEY,
            status VARCHAR(10) NOT NULL,
            claimed_by VARCHAR(200),
            claim_expires_at VARCHAR(40),
            decision VARCHAR(20),
            decided_by VARCHAR(200),
            decided_at VARCHAR(40),
            answer TEXT,
            note TEXT,
            updated_at VARCHAR(40) NOT NULL
        )"""))
    conn.execute(text("""
        CREATE TABLE review_decisions (
            id VARCHAR(32) PRIMARY KEY,
            exchange_id VARCHAR(32) NOT NULL,
            decision VARCHAR(20) NOT NULL,
            actor_id VARCHAR(200) NOT NULL,
            actor_role VARCHAR(20) NOT NULL,
            note TEXT,
            answer TEXT,
            created_at VARCHAR(40) NOT NULL
        )"""))
    conn.execute(text("CREATE INDEX ix_review_decisions_exchange ON review_decisions (exchange_id, created_at)"))


MIGRATIONS: list[Migration] = [("review.001_review", m001_review)]
