"""The same code on a real PostgreSQL server: "SQLite by default, PostgreSQL with a URL".

The server is started by the `postgres_url` fixture (Debian's PostgreSQL). These tests run the
store, conversations, feedback, the review queue (claims raced from threads), users, tokens, the
audit log and erasure against it, through the same services the app uses.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import inspect, text

from assistant.actor import Actor, cli_actor
from assistant.service import Assistant
from core.errors import Conflict, NotFound
from tests.conftest import SAMPLE_KB, ScriptedGenerator, quote_first_passage
from tests.test_store import EXPECTED_SCHEMA

ADMIN = cli_actor()
AGENT = Actor("pg-agent", "agent", "api")


@pytest.fixture(scope="module")
def pg(postgres_url, make_settings, tmp_path_factory):
    from assistant.app import Services

    services = Services(make_settings(tmp_path_factory.mktemp("pg-home"), HELPDESK_DATABASE_URL=postgres_url,
                                      HELPDESK_INGEST_SAMPLES="false"))
    assert services.engine.dialect.name == "postgresql"
    services.documents.ingest(ADMIN, [SAMPLE_KB / "returns-policy.md", SAMPLE_KB / "order-tracking.md"])
    return services


def _assistant(pg) -> Assistant:
    return Assistant(pg.guard, pg.retriever, ScriptedGenerator(quote_first_passage), pg.store,
                     answer_mode="generate", extractor=pg.extractor)


def test_a_blank_postgres_database_migrates_to_the_same_schema(pg):
    insp = inspect(pg.engine)
    schema = {t: [c["name"] for c in insp.get_columns(t)] for t in insp.get_table_names()}
    assert schema == EXPECTED_SCHEMA


def test_turns_conversations_feedback_and_review_on_postgres(pg):
    turn = _assistant(pg).respond(None, "My email is pg.customer@example.com, can I return a blender?", AGENT)
    row = pg.store.exchange(turn.exchange_id)
    assert row["redacted_input"] == "My email is <EMAIL_ADDRESS_1>, can I return a blender?"
    assert pg.store.session_owner(turn.session_id) == AGENT.id
    with pytest.raises(NotFound):
        _assistant(pg).respond(turn.session_id, "and then?", Actor("pg-other", "agent", "api"))
    pg.feedback.give(AGENT, turn.exchange_id, "down", "wrong", "Yes, within 30 days [1].")
    reviewers = [Actor(f"pg-r{i}", "reviewer", "api") for i in range(6)]

    def claim(actor):
        try:
            pg.review.claim(actor, turn.exchange_id)
            return actor.id
        except Conflict:
            return None

    with ThreadPoolExecutor(6) as pool:
        winners = [w for w in pool.map(claim, reviewers) if w]
    assert len(winners) == 1
    winner = next(r for r in reviewers if r.id == winners[0])
    done = pg.review.decide(winner, turn.exchange_id, "correct", "Yes, within 30 days, unused [1].")
    assert done["decision"] == "correct" and done["decided_by"] == winner.id
    built = pg.datasets.build(ADMIN)
    assert built.rows["sft"] >= 1


def test_users_tokens_and_audit_on_postgres(pg):
    _, password = pg.users.add(ADMIN, "pg-maria", "reviewer")
    assert pg.users.authenticate("pg-maria", password, "ui").role == "reviewer"
    assert pg.users.authenticate("pg-maria", "wrong-password", "ui") is None
    token_id, token = pg.users.create_token(ADMIN, "pg-maria")
    assert pg.users.actor_for_token(token).id == "pg-maria"
    pg.users.revoke_token(ADMIN, token_id)
    actions = [e["action"] for e in pg.audit.entries(ADMIN, who="pg-maria")]
    assert actions[:1] == ["login"]
    assert {"user_added", "token_created", "token_revoked"} <= {e["action"] for e in pg.audit.entries(ADMIN)}


def test_erasure_and_retention_on_postgres(pg):
    turn = _assistant(pg).respond(None, "This is Pat Quinlan, +1 212 555 0147, where is my parcel?", AGENT)
    pg.feedback.give(AGENT, turn.exchange_id, "up")
    erased = pg.erasure.erase_customer(ADMIN, "(212) 555-0147")
    assert erased.sessions == 1 and erased.exchanges == 1 and erased.feedback == 1
    with pg.engine.connect() as conn:
        left = conn.execute(text("SELECT COUNT(*) FROM exchanges WHERE session_id = :s"),
                            {"s": turn.session_id}).scalar()
    assert left == 0 and pg.vault.sessions_for("+1 212 555 0147") == set()
    assert pg.erasure.purge(ADMIN, 30)["sessions"] == 0  # nothing old enough
