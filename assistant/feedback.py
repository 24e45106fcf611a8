"""Feedback on answers: thumbs, a reason, an optional corrected answer.

A correction is an agent's free text and may hold the customer's details: it
passes the same PII redaction as a chat message before it is stored, and a
redaction failure stores nothing. An actor's later feedback on an exchange
replaces their earlier one (which is kept, marked superseded), so the history
of what was said stays readable while counts use the current feedback only.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import Connection, Engine, text

from assistant.actor import Actor
from assistant.store import Store
from core.db import Migration
from core.errors import BadInput, NotFound
from retrieval.memory import Label

RATINGS = ("up", "down")
REASONS = ("wrong", "incomplete", "not_grounded", "unsafe", "tone", "other")
MAX_CORRECTION_CHARS = 4000


@dataclass(frozen=True)
class Feedback:
    feedback_id: str
    exchange_id: str
    rating: str
    reason: str | None
    correction: str | None  # as stored: redacted

    def as_dict(self) -> dict:
        return asdict(self)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class FeedbackService:
    def __init__(self, engine: Engine, store: Store, redact: Callable[[str], str]) -> None:
        self.engine = engine
        self.store = store
        self.redact = redact  # the chat input's redaction: raw text in, redacted text out

    def give(self, actor: Actor, exchange_id: str, rating: str, reason: str | None = None,
             correction: str | None = None) -> Feedback:
        if rating not in RATINGS:
            raise BadInput(f"rating must be one of {', '.join(RATINGS)}, not {rating!r}")
        if reason is not None and reason not in REASONS:
            raise BadInput(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
        correction = (correction or "").strip() or None
        if correction is not None and len(correction) > MAX_CORRECTION_CHARS:
            raise BadInput(f"the correction is over {MAX_CORRECTION_CHARS} characters")
        record = self.store.exchange(exchange_id)
        # Agents rate answers in their own conversations only; another's exchange id reveals nothing.
        if record is None or self.store.session_owner(record["session_id"]) not in (actor.id, None):
            raise NotFound(f"no exchange {exchange_id}")
        stored = self.redact(correction) if correction is not None else None  # raises: nothing stored
        feedback = Feedback(uuid.uuid4().hex, exchange_id, rating, reason, stored)
        at = now()
        with self.engine.begin() as conn:
            conn.execute(text(
                "UPDATE feedback SET superseded_at = :at "
                "WHERE exchange_id = :e AND actor_id = :a AND superseded_at IS NULL"
            ), {"at": at, "e": exchange_id, "a": actor.id})
            conn.execute(text(
                "INSERT INTO feedback (id, exchange_id, actor_id, actor_role, via, rating, reason, correction, "
                "created_at) VALUES (:id, :e, :a, :role, :via, :rating, :reason, :correction, :at)"
            ), {"id": feedback.feedback_id, "e": exchange_id, "a": actor.id, "role": actor.role, "via": actor.via,
                "rating": rating, "reason": reason, "correction": stored, "at": at})
            if rating == "down":
                # A down-vote on an item a reviewer already closed puts it back in the queue.
                conn.execute(text(
                    "UPDATE review_items SET status = 'pending', decision = NULL, claimed_by = NULL, "
                    "claim_expires_at = NULL, updated_at = :at WHERE exchange_id = :e AND status = 'done'"
                ), {"at": at, "e": exchange_id})
        return feedback

    def approved_questions(self) -> tuple[object, list[Label]]:
        """What agents' votes teach the question memory (`retrieval.memory`): the first question of
        each conversation whose answer someone rates up and nobody down, labelled with the article
        the answer came from, or as one the articles do not cover where it said "I don't know";
        with a version that changes whenever the votes (or the erased rows) do."""
        with self.engine.connect() as conn:
            version = tuple(conn.execute(text(
                "SELECT COUNT(*), MAX(created_at), MAX(superseded_at) FROM feedback")).one())
            rows = conn.execute(text(
                "SELECT e.redacted_input, e.sources, e.answer_mode, e.reasons, e.created_at FROM exchanges e "
                "WHERE e.action IN ('allow', 'flag') "
                "AND EXISTS (SELECT 1 FROM feedback f WHERE f.exchange_id = e.id AND f.rating = 'up' "
                "AND f.superseded_at IS NULL) "
                "AND NOT EXISTS (SELECT 1 FROM feedback d WHERE d.exchange_id = e.id AND d.rating = 'down' "
                "AND d.superseded_at IS NULL) "
                "AND NOT EXISTS (SELECT 1 FROM exchanges p WHERE p.session_id = e.session_id "
                "AND p.created_at < e.created_at) ORDER BY e.created_at")).all()
        labels: dict[str, Label] = {}
        for question, sources, answer_mode, reasons, at in rows:
            sources, reasons = json.loads(sources or "[]"), json.loads(reasons or "[]")
            if answer_mode is not None and sources:
                labels[question] = Label(question, sources[0]["source"], at)
            elif {"no_answer_in_context", "no_context"} & set(reasons):
                labels[question] = Label(question, None, at)
        return version, list(labels.values())

    def exchange_ids(self) -> set[str]:
        """Exchanges with current feedback."""
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(text(
                "SELECT DISTINCT exchange_id FROM feedback WHERE superseded_at IS NULL"))}

    def for_exchange(self, exchange_id: str, history: bool = False) -> list[dict]:
        """Current feedback on an exchange (every actor's latest), or all of it with `history`."""
        query = "SELECT * FROM feedback WHERE exchange_id = :e"
        if not history:
            query += " AND superseded_at IS NULL"
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query + " ORDER BY created_at"), {"e": exchange_id})]


def m001_feedback(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE feedback (
            id VARCHAR(32) PRIMARY KEY,
            exchange_id VARCHAR(32) NOT NULL,
            actor_id VARCHAR(200) NOT NULL,
            actor_role VARCHAR(20) NOT NULL,
            via VARCHAR(10) NOT NULL,
            rating VARCHAR(4) NOT NULL,
            reason VARCHAR(20),
            correction TEXT,
            created_at VARCHAR(40) NOT NULL,
            superseded_at VARCHAR(40)
        )"""))
    conn.execute(text("CREATE INDEX ix_feedback_exchange ON feedback (exchange_id, superseded_at)"))


MIGRATIONS: list[Migration] = [("feedback.001_feedback", m001_feedback)]
