"""The migration scheme: a blank database migrates to exactly the expected schema."""
from __future__ import annotations

from sqlalchemy import inspect

from assistant import audit, feedback, review, store as exchange_log, users
from finetune import ab, datasets, jobs, registry
from assistant.database import open_database
from assistant.store import ExchangeRecord, Store
from guardrails import vault
from retrieval import catalog

EXPECTED_SCHEMA = {
    "schema_migrations": ["name", "applied_at"],
    "documents": ["collection", "source", "file_hash", "title", "doc_type", "chunks", "pii_redacted", "ingested_at"],
    "document_chunks": ["collection", "chunk_id", "source"],
    "pending_ingests": ["id", "collection", "source", "state", "added_ids", "removable_ids", "started_at"],
    "vault": ["session_id", "ciphertext", "expires_at"],
    "vault_lookup": ["session_id", "value_hash"],
    "vault_meta": ["key_check"],
    "feedback": ["id", "exchange_id", "actor_id", "actor_role", "via", "rating", "reason", "correction", "created_at",
                 "superseded_at"],
    "review_items": ["exchange_id", "status", "claimed_by", "claim_expires_at", "decision", "decided_by", "decided_at",
                     "answer", "note", "updated_at"],
    "review_decisions": ["id", "exchange_id", "decision", "actor_id", "actor_role", "note", "answer", "created_at"],
    "datasets": ["version", "rows", "built_by", "built_at"],
    "dataset_rows": ["id", "version", "kind", "split", "row_key", "origin", "exchange_id", "feedback_id", "chunk_id"],
    "jobs": ["id", "kind", "state", "step", "total", "loss", "eta_s", "resumed_at_step", "config", "result", "message",
             "pid", "cancel_requested", "created_by", "created_at", "started_at", "finished_at"],
    "adapters": ["version", "path", "base_model", "base_model_hash", "dataset", "config", "metrics", "gate", "status",
                 "trained_by", "job_id", "created_at", "erased_rows"],
    "adapter_events": ["id", "version", "action", "actor", "at", "reason", "forced", "previous", "undone_at"],
    "ab_tests": ["id", "candidate", "baseline", "share", "started_by", "started_at", "stopped_by", "stopped_at"],
    "conversations": ["id", "owner", "created_at"],
    "users": ["name", "role", "password_hash", "created_at", "removed_at"],
    "api_tokens": ["id", "user_name", "label", "token_hash", "created_at", "revoked_at"],
    "audit": ["id", "at", "actor", "role", "via", "action", "target", "detail"],
    "exchanges": [
        "id", "session_id", "created_at", "redacted_input", "answer", "action", "reasons", "input_verdict",
        "output_verdict", "sources", "prompt_version", "model", "adapter", "latency_ms", "flagged", "answer_mode",
        "messages", "raw_answer", "generation", "actor", "review_reasons", "needs_review",
    ],
}


def test_blank_database_migrates_to_expected_schema(tmp_path):
    store = Store(open_database(f"sqlite:///{tmp_path / 'blank.db'}"))
    insp = inspect(store.engine)
    schema = {table: [c["name"] for c in insp.get_columns(table)] for table in insp.get_table_names()}
    assert schema == EXPECTED_SCHEMA
    with store.engine.connect() as conn:
        applied = [row[0] for row in conn.exec_driver_sql("SELECT name FROM schema_migrations ORDER BY name")]
    owned = [*exchange_log.MIGRATIONS, *catalog.MIGRATIONS, *vault.MIGRATIONS, *feedback.MIGRATIONS,
             *review.MIGRATIONS, *datasets.MIGRATIONS, *jobs.MIGRATIONS, *registry.MIGRATIONS,
             *ab.MIGRATIONS, *users.MIGRATIONS, *audit.MIGRATIONS]  # each package's own tables
    assert applied == sorted(name for name, _ in owned)


def test_reopening_does_not_migrate_twice_and_keeps_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    record = ExchangeRecord("s1", "hi", "hello", "allow", [], {}, None, [], "v1", "m", None, {"total": 1.0})
    Store(open_database(url)).log_exchange(record)
    rows = Store(open_database(url)).exchanges()
    assert len(rows) == 1 and rows[0]["id"] == record.id and rows[0]["latency_ms"] == {"total": 1.0}


def test_rows_logged_before_the_full_record_stay_readable_and_queued(tmp_path):
    """A database at schema 004 with a flagged row: migrating keeps it, readable, in the review queue."""
    from sqlalchemy import create_engine, text

    from assistant.review import ReviewService
    from core.db import migrate

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with create_engine(url).begin() as conn:
        migrate(conn, [m for m in exchange_log.MIGRATIONS if not m[0].startswith("assistant.")])
        conn.execute(text(
            "INSERT INTO exchanges (id, session_id, created_at, redacted_input, answer, action, reasons, input_verdict, "
            "output_verdict, sources, prompt_version, model, adapter, latency_ms, flagged, answer_mode) VALUES "
            "('old1', 's', '2026-01-01T00:00:00', 'q', 'a', 'flag', '[\"sentiment:angry\"]', '{}', NULL, '[]', "
            "'v1', 'm', NULL, '{}', 1, NULL)"))
    engine = open_database(url)
    row = Store(engine).exchange("old1")
    assert row["messages"] is None and row["raw_answer"] is None and row["needs_review"] is True
    assert Store(engine).session_owner("s") == "unknown"  # logged before owners were kept
    review = ReviewService(engine, Store(engine), None, str)
    from assistant.actor import Actor

    assert [(i["exchange_id"], i["reasons"]) for i in review.queue(Actor("r", "reviewer"))] == [("old1", ["flagged"])]


def test_concurrent_writers_lose_nothing(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = Store(open_database(f"sqlite:///{tmp_path / 'db.sqlite'}"))

    def write(i: int) -> str:
        return store.log_exchange(ExchangeRecord(f"s{i % 4}", f"q{i}", "a", "allow", [], {}, None, [], "v1", "m", None, {}))

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(write, range(80)))
    assert len(set(ids)) == 80 and len(store.exchanges(limit=1000)) == 80
