"""Erasure (GDPR art. 17, CCPA) and retention: a customer's data removed everywhere it went.

A conversation's data lives in: its exchanges, the feedback and review items on
them, its vault entry and lookup hashes, its ownership row, the dataset rows
built from it (in the database and in the dataset files), and reviewers'
labels taken from it. Erasing removes all of those; adapters trained on a
dataset that held erased rows cannot unlearn them, so they are marked in the
registry (`erased_rows`) and a retrain without them is offered. The audit row
says how much was erased, never whose: not the value, not the session ids.

A customer is found by the value they give (an e-mail address, phone number or
name) through the keyed hashes the vault keeps beside each entry; the value
itself is never stored or logged.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine, bindparam, text

from assistant.actor import Actor, require
from assistant.audit import AuditLog
from core.errors import BadInput, NotFound
from finetune.registry import AdapterRegistry
from guardrails.vault import Vault

log = logging.getLogger(__name__)


@dataclass
class Erased:
    sessions: int = 0
    exchanges: int = 0
    feedback: int = 0
    review_items: int = 0
    dataset_rows: int = 0
    dataset_files: int = 0
    label_rows: int = 0
    vault_entries: int = 0
    adapters_marked: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class ErasureService:
    def __init__(self, engine: Engine, vault: Vault, registry: AdapterRegistry, audit: AuditLog,
                 datasets_dir: Path, labels_dir: Path) -> None:
        self.engine = engine
        self.vault = vault
        self.registry = registry
        self.audit = audit
        self.datasets_dir = datasets_dir
        self.labels_dir = labels_dir

    def erase_session(self, actor: Actor, session_id: str) -> Erased:
        require(actor, "admin")
        with self.engine.connect() as conn:
            known = conn.execute(text("SELECT 1 FROM exchanges WHERE session_id = :s UNION "
                                      "SELECT 1 FROM conversations WHERE id = :s"), {"s": session_id}).first()
        if not known:
            raise NotFound(f"no conversation {session_id!r}")
        erased = self._erase({session_id})
        self.audit.record(actor, "erasure", None, by="session", **_counts(erased))
        return erased

    def erase_customer(self, actor: Actor, value: str) -> Erased:
        """Every conversation in which the customer's value was redacted; none found is not an
        error (the audit row says so), as an erasure request must be answerable either way."""
        require(actor, "admin")
        if not (value or "").strip():
            raise BadInput("give the customer's e-mail address, phone number or name")
        erased = self._erase(self.vault.sessions_for(value))
        self.audit.record(actor, "erasure", None, by="customer", **_counts(erased))
        return erased

    def purge(self, actor: Actor, retention_days: float | None) -> dict:
        """Retention: exchanges older than `retention_days` (with everything that came from them)
        and expired vault entries. Run on a schedule by the server and by `helpdesk purge`."""
        require(actor, "admin")
        sessions: set[str] = set()
        if retention_days is not None:
            cutoff = (datetime.now(timezone.utc) - timedelta(days=retention_days)).isoformat()
            with self.engine.connect() as conn:
                # A conversation goes once its newest turn is past retention: never half of one.
                sessions = {r[0] for r in conn.execute(text(
                    "SELECT session_id FROM exchanges GROUP BY session_id HAVING MAX(created_at) < :c"),
                    {"c": cutoff})}
        erased = self._erase(sessions) if sessions else Erased()
        expired = self.vault.purge_expired()
        summary = {**_counts(erased), "vault_expired": expired}
        if sessions or expired:
            self.audit.record(actor, "purge", None, retention_days=retention_days, **summary)
        return summary

    # ---------------------------------------------------------------------------------------------
    def _erase(self, sessions: set[str]) -> Erased:
        out = Erased(sessions=len(sessions))
        if not sessions:
            return out
        s = list(sessions)
        with self.engine.begin() as conn:
            exchanges = [r[0] for r in conn.execute(
                text("SELECT id FROM exchanges WHERE session_id IN :s").bindparams(bindparam("s", expanding=True)),
                {"s": s})]
            per_version = {}
            if exchanges:
                def run(sql: str) -> int:
                    return conn.execute(text(sql).bindparams(bindparam("e", expanding=True)),
                                        {"e": exchanges}).rowcount

                for version, n in conn.execute(text(
                        "SELECT version, COUNT(*) FROM dataset_rows WHERE exchange_id IN :e GROUP BY version"
                ).bindparams(bindparam("e", expanding=True)), {"e": exchanges}):
                    per_version[version] = n
                out.dataset_rows = run("DELETE FROM dataset_rows WHERE exchange_id IN :e")
                out.feedback = run("DELETE FROM feedback WHERE exchange_id IN :e")
                out.review_items = run("DELETE FROM review_items WHERE exchange_id IN :e")
                run("DELETE FROM review_decisions WHERE exchange_id IN :e")
                out.exchanges = run("DELETE FROM exchanges WHERE id IN :e")
            conn.execute(text("DELETE FROM conversations WHERE id IN :s").bindparams(
                bindparam("s", expanding=True)), {"s": s})
            out.adapters_marked = self.registry.mark_erased(conn, per_version)
        out.vault_entries = self.vault.forget_all(s)
        gone = set(exchanges)
        if gone:
            out.dataset_files = sum(_drop_lines(p, gone) > 0 for p in sorted(self.datasets_dir.glob("*/*.jsonl")))
            out.label_rows = sum(_drop_lines(p, gone) for p in sorted(self.labels_dir.glob("*.jsonl")))
        log.info("erased %d conversations (%d exchanges)", out.sessions, out.exchanges)
        return out


def _counts(erased: Erased) -> dict:
    d = erased.as_dict()
    d["adapters_marked"] = list(erased.adapters_marked)  # versions are not personal data
    return d


def _drop_lines(path: Path, exchange_ids: set[str]) -> int:
    """Rewrite a JSONL file without the rows that came from these exchanges (atomically)."""
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            kept.append(line)
            continue
        lineage = row.get("lineage") or {}
        if (lineage.get("exchange_id") or row.get("exchange_id")) in exchange_ids:
            dropped += 1
        else:
            kept.append(line)
    if dropped:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    return dropped
