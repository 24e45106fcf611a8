"""Faults: a process killed with SIGKILL at the worst step, then a restart; a read-only or
full database. Real processes, a real SQLite file and a real Chroma directory.

Kills land at exact steps through `core.faults.crash_point` (`HELPDESK_CRASH_AT`): the
process sends itself SIGKILL there, which is what `kill -9` at that moment would do.
(Training's kill and resume is tested in test_training.py.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import event, text

from tests.conftest import settings_env


@pytest.fixture
def cli(tmp_path, tiny_model_dir):
    home = tmp_path / "home"
    env = {**os.environ, **settings_env(home, tiny_model_dir), "HELPDESK_INGEST_SAMPLES": "false"}

    def run(*args: str, crash_at: str | None = None, extra_env: dict | None = None):
        more = {"HELPDESK_CRASH_AT": crash_at} if crash_at else {}
        return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                              env={**env, **more, **(extra_env or {})}, timeout=300)

    run.home = home
    return run


def _docs(tmp_path: Path, version: str) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir(exist_ok=True)
    for name, topic in (("lanterns", "storm lanterns"), ("kettles", "copper kettles"), ("rugs", "wool rugs")):
        (folder / f"{name}.md").write_text(
            f"# {name.title()}\n\n## Care\n\nOur {topic} ({version}) are cleaned with a soft dry cloth.\n\n"
            f"## Returns\n\nUnused {topic} can be returned within {30 if version == 'v1' else 60} days.\n")
    return folder


def _state(home: Path) -> dict:
    """What the catalog says is live, what Chroma holds, and any interrupted ingest."""
    import chromadb
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{home / 'helpdesk.db'}")
    with engine.connect() as conn:
        live = {r[0] for r in conn.execute(text("SELECT chunk_id FROM document_chunks"))}
        pending = conn.execute(text("SELECT COUNT(*) FROM pending_ingests")).scalar()
        docs = conn.execute(text("SELECT COUNT(*) FROM documents")).scalar()
    engine.dispose()
    client = chromadb.PersistentClient(str(home / "chroma"))
    stored = set()
    for collection in client.list_collections():
        stored |= set(client.get_collection(collection.name).get(include=[])["ids"])
    return {"live": live, "stored": stored, "pending": pending, "documents": docs}


def _search(cli, query: str) -> str:
    proc = cli("search", query, "--k", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["hits"][0]["text"]


@pytest.mark.parametrize("step, visible", [("ingest.vectors_written", "30 days"), ("ingest.committed", "60 days")])
def test_kill_9_during_a_reingest_then_restart_is_consistent(cli, tmp_path, step, visible):
    folder = _docs(tmp_path, "v1")
    assert cli("ingest", str(folder)).returncode == 0
    _docs(tmp_path, "v2")  # every file changed
    killed = cli("ingest", str(folder), crash_at=step)
    assert killed.returncode == -signal.SIGKILL
    crashed = _state(cli.home)
    assert crashed["pending"] >= 1  # it died in the middle of a batch
    # Before any recovery, search sees exactly one whole version: the old one until the commit, then the new.
    assert visible in _search(cli, "how long to return storm lanterns")
    # The next ingest recovers first, then finishes the job; nothing is left over or lost.
    again = cli("ingest", str(folder), "--json")
    assert again.returncode == 0, again.stderr
    after = _state(cli.home)
    assert after["pending"] == 0 and after["documents"] == 3
    assert after["stored"] == after["live"] and len(after["live"]) >= 3
    # Killed before the commit, the new version is ingested again; after it, it was already whole and live.
    assert (json.loads(again.stdout)["chunks_added"] > 0) == (visible == "30 days")
    assert "60 days" in _search(cli, "how long to return storm lanterns")


@pytest.mark.parametrize("change", ["promote", "rollback"])
@pytest.mark.parametrize("moment", ["before_commit", "committed"])
def test_kill_9_during_promotion_or_rollback_keeps_the_release_and_its_audit_row_together(
        cli, tmp_path, tiny_model_dir, change, moment):
    from assistant.database import open_database
    from finetune.registry import AdapterRegistry
    from finetune.train import model_hash

    engine = open_database(f"sqlite:///{cli.home / 'helpdesk.db'}")
    registry = AdapterRegistry(engine)
    base = model_hash(tiny_model_dir)
    for version in ("a", "b"):
        folder = tmp_path / version
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")
        registry.register(version, folder, {"base_model": "tiny", "base_model_hash": base, "trained_by": "cli:test"})
    registry.promote("a", "cli:test", base, force=True, reason="first")
    if change == "rollback":
        registry.promote("b", "cli:test", base, force=True, reason="second")

    def audited() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT COUNT(*) FROM audit WHERE action = :a"), {"a": change}).scalar()

    command = ("adapters", "promote", "b", "--force", "--reason", "fault test") if change == "promote" else \
        ("adapters", "rollback")
    killed = cli(*command, crash_at=f"{change}.{moment}")
    assert killed.returncode == -signal.SIGKILL
    landed = moment == "committed"
    before, after = ("a", "b") if change == "promote" else ("b", "a")
    assert registry.serving_version() == (after if landed else before)
    assert audited() == landed  # the change and its audit row land together, or neither does
    if not landed:  # after the restart the same command works, and is audited once
        retry = cli(*command)
        assert retry.returncode == 0, retry.stderr
        assert registry.serving_version() == after and audited() == 1
    engine.dispose()


def test_a_read_only_database_is_a_clear_error_not_a_traceback(cli):
    from assistant.database import open_database

    open_database(f"sqlite:///{cli.home / 'helpdesk.db'}").dispose()  # an existing, migrated database
    read_only = {"HELPDESK_DATABASE_URL": f"sqlite:///file:{cli.home / 'helpdesk.db'}?mode=ro&uri=true"}
    proc = cli("users", "add", "sam", "--role", "agent", extra_env=read_only)
    assert proc.returncode == 2
    assert "read-only" in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    listed = cli("users", "list", extra_env=read_only)  # reading still works
    assert listed.returncode == 0 and "sam" not in listed.stdout


@pytest.fixture
def full_disk(services):
    """SQLite's own limit on the file's pages: every write that needs a new page fails with
    SQLITE_FULL ("database or disk is full"), exactly as on a full disk."""
    engine = services.engine

    def cap(dbapi_conn, _record) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count = {pages}")

    event.listen(engine, "connect", cap)
    engine.dispose()  # new connections get the cap
    try:
        yield
    finally:
        event.remove(engine, "connect", cap)
        engine.dispose()


def test_a_full_disk_is_a_clear_503_over_http_and_nothing_is_half_written(server, services, people, full_disk):
    import httpx

    before = len(services.store.exchanges(limit=100_000))
    for _ in range(3):  # enough rows to need a new page, whatever space the last page had left
        r = httpx.post(f"{server}/api/chat", headers=people["agent"].headers, timeout=120,
                       json={"message": "How long do refunds take? " + "x" * 3000})
        if r.status_code != 200:
            break
    assert r.status_code == 503, r.text
    assert set(r.json()) == {"error"} and "full" in r.json()["error"]
    assert len(services.store.exchanges(limit=100_000)) <= before + 2
    users = httpx.get(f"{server}/api/me", headers=people["agent"].headers, timeout=30)
    assert users.status_code == 200  # reads still work
