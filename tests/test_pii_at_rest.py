"""No raw PII at rest: document metadata is redacted, and `helpdesk scan-pii` finds any leak.

Real processes through the CLI, a real Chroma folder and SQLite database (its WAL
included), read as bytes.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_KB, settings_env

EMAIL = "maria.lopez@example.com"
PHONE = "415-555-0134"
CUSTOMER = "LG-7KX29QPA"
MESSAGES = [
    "Hi, I'm Jonathan Whitaker, email jonathan.whitaker@example.com, phone 415-555-0132. Where is my parcel?",
    "My card 4111 1111 1111 1111 was charged twice for order ORD-482913, can you refund it?",
    "Priya Raman at 22 Baker Street wants to change her delivery address, her number is 020 7946 0958.",
]
RAW = [EMAIL, PHONE, CUSTOMER, "jonathan.whitaker@example.com", "415-555-0132", "4111 1111 1111 1111",
       "ORD-482913", "020 7946 0958", "Whitaker", "Priya Raman"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_model_dir, make_settings):
    """A data directory holding a PII-laden document and a PII-heavy run of chat turns."""
    home = tmp_path_factory.mktemp("pii-home")
    env = {**os.environ, **settings_env(home, tiny_model_dir), "HELPDESK_INGEST_SAMPLES": "false"}
    docs = home.parent / f"{home.name}-docs"
    docs.mkdir()
    (docs / f"escalations-{EMAIL}-{PHONE}.md").write_text(
        f"# Escalations: call us on +1 {PHONE}\n\n"
        f"## Write to {EMAIL}\n\n"
        f"Escalations go to the duty manager on +1 {PHONE} or {EMAIL}. Account {CUSTOMER} is the test one.\n"
    )
    (docs / "returns-policy.md").write_text((SAMPLE_KB / "returns-policy.md").read_text())

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                              env=env, timeout=300)
        assert not check or proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    out = json.loads(run("ingest", str(docs), "--json").stdout)
    assert out["files"] == 2 and not out["errors"] and out["pii_redacted"] >= 6
    # The turns run in-process (one model load instead of one a message), on the same data.
    from assistant.app import Services

    from assistant.actor import Actor

    services = Services(make_settings(home, HELPDESK_INGEST_SAMPLES="false"))
    agent, reviewer = Actor("ui:agent", "agent", "ui"), Actor("cli:reviewer", "reviewer", "cli")
    turns = [services.assistant.respond(None, message, agent) for message in MESSAGES]
    # What agents and reviewers type about a turn holds the customer's details too.
    services.feedback.give(agent, turns[0].exchange_id, "down", "wrong",
                           f"Tell Jonathan Whitaker at {EMAIL} that the parcel left on Monday.")
    services.review.decide(reviewer, turns[0].exchange_id, "correct",
                           f"Priya Raman can be reached on {PHONE} about the parcel.", f"customer {CUSTOMER} called twice")
    services.engine.dispose()
    return home, run


def _bytes_at_rest(home: Path) -> bytes:
    """Every byte of the database (and its WAL) and the Chroma folder."""
    files = [p for p in home.rglob("*") if p.is_file() and (p.name.startswith("helpdesk.db") or "chroma" in p.parts)]
    assert any(p.name == "helpdesk.db-wal" for p in files) or any(p.name == "helpdesk.db" for p in files)
    return b"".join(p.read_bytes() for p in files)


def test_document_names_titles_headings_and_text_are_stored_redacted(home):
    home, run = home
    data = _bytes_at_rest(home)
    for value in RAW:
        assert value.encode() not in data, value
    listed = json.loads(run("docs", "list", "--json").stdout)["documents"]
    escalation = next(d for d in listed if d["source"].startswith("escalations-"))
    assert "<EMAIL_ADDRESS>" in escalation["source"] and "<PHONE_NUMBER>" in escalation["source"]
    assert escalation["title"] == "Escalations: call us on <PHONE_NUMBER>"
    hits = json.loads(run("search", "who do escalations go to", "--k", "1", "--json").stdout)["hits"]
    assert hits[0]["source"] == escalation["source"] and EMAIL not in hits[0]["text"]
    # The same file ingested again keeps its (redacted) name: it is unchanged, not a new document.
    docs = home.parent / f"{home.name}-docs"
    again = json.loads(run("ingest", str(docs), "--json").stdout)
    assert again["chunks_added"] == 0


def test_scan_pii_finds_nothing_after_a_pii_heavy_run(home):
    home, run = home
    report = json.loads(run("scan-pii", "--json").stdout)
    assert report == {"findings": [], "count": 0}


def test_scan_pii_reports_a_seeded_leak_by_where_it_is(home, tmp_path):
    home, run = home
    db = home / "helpdesk.db"
    with sqlite3.connect(db) as conn:
        row_id = conn.execute("SELECT id FROM exchanges LIMIT 1").fetchone()[0]
        conn.execute("UPDATE exchanges SET answer = answer || ' Call Jonathan Whitaker at jw@example.com' "
                     "WHERE id = ?", (row_id,))
    dataset = home / "datasets" / "sft.jsonl"
    dataset.parent.mkdir(exist_ok=True)
    dataset.write_text(json.dumps({"prompt": "Where is my order?", "completion": "Sent to 415-555-0199."}) + "\n")
    try:
        proc = run("scan-pii", "--json", check=False)
        assert proc.returncode == 1
        findings = json.loads(proc.stdout)["findings"]
        where = {(f["where"], f["record"], f["entity"]) for f in findings}
        assert ("exchanges.answer", row_id, "EMAIL_ADDRESS") in where
        assert ("exchanges.answer", row_id, "PERSON") in where
        assert ("datasets/sft.jsonl", "line 1", "PHONE_NUMBER") in where
        assert "jw@example.com" not in proc.stdout  # a finding names where, never the value
    finally:
        dataset.unlink()
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE exchanges SET answer = replace(answer, ' Call Jonathan Whitaker at jw@example.com', '')")


def test_stored_text_is_redacted_until_a_second_reading_finds_nothing(services):
    """NER is not idempotent: this once-redacted model output (the tiny test model's, as stored by
    an earlier version) still held a name for a second reading, and the dataset build refused it."""
    from types import SimpleNamespace

    from guardrails.redaction import Redactor
    from guardrails.verdict import Entity

    redactor = services.guard.redactor
    once = ("opticherence <PERSON> done superconductingeral dogEAEA Wonderink threatening machining urge doctorate "
            "Copy suffered <PERSON> cookophystadtIndia harbour")
    assert not redactor.analyze(redactor.redact_until_clean(once))  # stored text is read until it finds none
    assert redactor.redact_until_clean("Where is my parcel?") == "Where is my parcel?"
    # Which texts a second reading changes depends on the NER build, so the loop itself is shown
    # with a scripted reader (faked: only `analyze`): it finds "Wonderink" only once "Copy" is gone.
    def analyze(text, entities=None):
        word = "Copy" if "Copy" in text else "Wonderink" if "Wonderink" in text else None
        return [Entity("PERSON", text.index(word), text.index(word) + len(word), 0.9)] if word else []

    scripted = SimpleNamespace(analyze=analyze, replace=Redactor.replace)
    clean = Redactor.redact_until_clean(scripted, once)
    assert "Copy" not in clean and "Wonderink" not in clean and not analyze(clean)
    stubborn = SimpleNamespace(analyze=lambda text, entities=None: [Entity("PERSON", 0, 1, 0.9)],
                               replace=lambda text, found: text)
    with pytest.raises(ValueError, match="still finds personal data"):
        Redactor.redact_until_clean(stubborn, "x")  # never clean: withheld, not stored


def test_an_answer_quoting_its_sources_is_not_a_finding_but_a_name_of_its_own_is(services):
    from assistant.scan import database_texts, scan_texts
    from assistant.store import ExchangeRecord

    passage = "Our Columbus showroom manager, Maria Lopez, runs the Saturday assembly classes."
    sources = [{"source": "showroom.md", "text": passage}]

    def logged(answer: str) -> str:
        return services.store.log_exchange(ExchangeRecord(
            "s-scan", "who runs the classes?", answer, "allow", [], {}, None, sources, "v1", "m", None, {}))

    quoted, own = logged("Maria Lopez runs them [1]."), logged("Jane Doe runs them [1].")
    findings = scan_texts(services.guard.redactor, database_texts(services.engine, tables={"exchanges"}), None)
    answers = {f.record for f in findings if f.where == "exchanges.answer"}
    assert own in answers and quoted not in answers
