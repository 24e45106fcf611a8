"""Erasure and retention on the real store, vault, dataset files and registry."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from assistant.actor import Actor, cli_actor
from assistant.service import Assistant
from assistant.store import ExchangeRecord
from core.errors import Forbidden, NotFound
from tests.conftest import ScriptedGenerator, quote_first_passage

ADMIN = cli_actor()
AGENT = Actor("erasure-agent", "agent", "ui")


def _everything(services) -> str:
    """Every row of every table but the audit log, and every dataset and label file, as one text.
    (The audit log keeps its rows: they name ids of things, never what was said.)"""
    with services.engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
                  if r[0] != "audit"]
        rows = [str(tuple(r)) for t in tables for r in conn.execute(text(f"SELECT * FROM {t}"))]
    files = [p.read_text(encoding="utf-8") for folder in ("datasets", "labels")
             for p in (services.settings.home / folder).rglob("*.jsonl")]
    return "\n".join(rows + files)


def _customer_conversation(services, email: str, phone: str,
                           correction: str = "Yes, within 30 days [1].") -> tuple[str, list[str]]:
    assistant = Assistant(services.guard, services.retriever, ScriptedGenerator(quote_first_passage),
                          services.store, answer_mode="generate", extractor=services.extractor)
    first = assistant.respond(None, f"Hi, I'm Dana Whitfield, {email}, can I return an opened blender?", AGENT)
    second = assistant.respond(first.session_id, f"Call me on {phone} if not", AGENT)
    services.feedback.give(AGENT, first.exchange_id, "down", "wrong", correction)
    services.feedback.give(AGENT, second.exchange_id, "up")
    services.review.decide(ADMIN, first.exchange_id, "false_alarm", note="fine", label="sentiment:neutral")
    return first.session_id, [first.exchange_id, second.exchange_id]


def test_erasing_a_customer_removes_every_trace_and_marks_the_adapter(services, tmp_path):
    email, phone = "dana.whitfield@example.com", "+1 (415) 555-0199"
    session, exchanges = _customer_conversation(services, email, phone)
    # Another customer's words differ: identical rows would be one row after deduplication, kept for either.
    other_session, other_exchanges = _customer_conversation(services, "someone.else@example.com", "+44 20 7946 0958",
                                                            "Yes, if it is unused, within 30 days [1].")
    built = services.datasets.build(ADMIN)
    services.adapters.register("erasure-1", tmp_path, {"base_model": "m", "base_model_hash": "h",
                                                      "dataset": built.version, "trained_by": "t"})
    before = _everything(services)
    assert all(e in before for e in exchanges) and services.vault.sessions_for(email) == {session}

    # The customer gives their phone number in another format than they typed it.
    erased = services.erasure.erase_customer(ADMIN, "415.555.0199")
    assert erased.sessions == 1 and erased.exchanges == 2 and erased.feedback == 2 and erased.review_items == 1
    assert erased.dataset_rows >= 1 and erased.dataset_files >= 1 and erased.label_rows == 1
    assert erased.vault_entries == 1 and erased.adapters_marked == ["erasure-1"]

    after = _everything(services)
    for trace in (*exchanges, session):
        assert trace not in after, trace
    assert email not in after and "Whitfield" not in after and "555-0199" not in after
    assert services.vault.sessions_for(email) == set()
    assert all(e in after for e in other_exchanges)  # nobody else's data went with it
    assert services.adapters.get("erasure-1")["erased_rows"] == erased.dataset_rows
    [entry] = services.audit.entries(ADMIN, action="erasure", limit=1)
    assert entry["detail"]["by"] == "customer" and entry["detail"]["exchanges"] == 2
    assert "415" not in json.dumps(entry) and session not in json.dumps(entry)

    again = services.erasure.erase_customer(ADMIN, email)  # nothing left: still answered, still audited
    assert again.sessions == 0
    services.erasure.erase_session(ADMIN, other_session)
    assert not any(e in _everything(services) for e in other_exchanges)


def test_only_admins_erase_and_an_unknown_conversation_is_not_found(services):
    with pytest.raises(Forbidden):
        services.erasure.erase_customer(Actor("r", "reviewer", "ui"), "x@example.com")
    with pytest.raises(NotFound):
        services.erasure.erase_session(ADMIN, "no-such-conversation")


def test_retention_purges_old_conversations_whole_and_expired_vault_entries(services):
    old = (datetime.now(timezone.utc) - timedelta(days=40)).isoformat()
    recent = datetime.now(timezone.utc).isoformat()

    def turn(session: str, at: str) -> str:
        return services.store.log_exchange(ExchangeRecord(
            session, "q", "a", "allow", [], {}, None, [], "v1", "m", None, {"total": 1.0}, created_at=at))

    gone = turn("retention-old", old)
    mixed_old, mixed_new = turn("retention-mixed", old), turn("retention-mixed", recent)
    kept = turn("retention-new", recent)
    services.vault.pseudonymize("retention-vault", "call 555-0100", [(5, 13, "PHONE_NUMBER")])
    with services.engine.begin() as conn:
        conn.execute(text("UPDATE vault SET expires_at = '2000-01-01' WHERE session_id = 'retention-vault'"))

    summary = services.erasure.purge(ADMIN, 30)
    assert summary["vault_expired"] >= 1 and summary["sessions"] >= 1
    assert services.store.exchange(gone) is None
    for kept_id in (mixed_old, mixed_new, kept):  # a conversation still in use is kept whole
        assert services.store.exchange(kept_id) is not None
    [entry] = services.audit.entries(ADMIN, action="purge", limit=1)
    assert entry["detail"]["retention_days"] == 30
