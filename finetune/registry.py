"""The adapter registry: every trained adapter version with its provenance, and which one serves.

A version is registered when its training job ends (`finetune.worker`): base model
and its hash, dataset version, config, metrics, who trained it. The evaluation
gate's result is stored on it. What serves is derived from the promotion events:
the newest promotion not rolled back, or the base model when there is none. A
promotion or a rollback is one transaction (a row inserted, or one conditional
update), so a reader always sees one version or the other, never half of a
switch; servers read it on every turn and switch adapters without a restart.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import Connection, Engine, text

from core.db import Migration
from core.errors import BadInput, Conflict, ModelUnavailable, NotFound
from core.faults import crash_point

InTransaction = Callable[[Connection], None]

STATUSES = ("candidate", "archived")


@dataclass(frozen=True)
class AdapterRef:
    """An adapter the generator can load: its version and folder, and whether `auto` mode shows
    its answers (`trusted`): the registry's refs are trusted where the evaluation gate found them
    better than the extractive answers."""

    version: str
    path: Path
    trusted: bool = False


def beats_extractive(gate: dict | None) -> bool:
    """The gate's comparison with the extractive answers, where it made one."""
    return bool(gate and (gate.get("extractive") or {}).get("beaten"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _decoded(row) -> dict:
    adapter = dict(row._mapping)
    for key in ("config", "metrics", "gate"):
        adapter[key] = json.loads(adapter[key]) if adapter[key] else None
    return adapter


class AdapterRegistry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(self, version: str, path: Path, meta: dict) -> None:
        """Record a newly trained adapter (a candidate: it serves nothing until promoted). Again
        for the same folder is a no-op: a worker killed after registering runs again."""
        path = Path(path).resolve()
        with self.engine.begin() as conn:
            exists = conn.execute(text("SELECT path FROM adapters WHERE version = :v"), {"v": version}).first()
            if exists and exists.path == str(path):
                return
            if exists:
                raise Conflict(f"adapter {version} is already registered, from {exists.path}")
            conn.execute(text(
                "INSERT INTO adapters (version, path, base_model, base_model_hash, dataset, config, metrics, "
                "status, trained_by, job_id, created_at) VALUES (:v, :path, :base, :hash, :dataset, :config, "
                ":metrics, 'candidate', :by, :job, :at)"
            ), {"v": version, "path": str(path), "base": meta["base_model"], "hash": meta["base_model_hash"],
                "dataset": meta.get("dataset"), "config": json.dumps(meta.get("config")),
                "metrics": json.dumps(meta.get("metrics")), "by": meta.get("trained_by") or "unknown",
                "job": meta.get("job_id"), "at": _now()})

    def _row(self, version: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM adapters WHERE version = :v"), {"v": version}).first()
        if row is None:
            raise NotFound(f"no adapter {version}")
        return _decoded(row)

    def get(self, version: str) -> dict:
        adapter = self._row(version)
        adapter["serving"] = self.serving_version() == version
        return adapter

    def list(self) -> list[dict]:
        serving = self.serving_version()
        with self.engine.connect() as conn:
            rows = [_decoded(r) for r in conn.execute(text("SELECT * FROM adapters ORDER BY created_at DESC"))]
        for adapter in rows:
            adapter["serving"] = adapter["version"] == serving
        return rows

    @staticmethod
    def mark_erased(conn: Connection, rows_per_dataset: dict[str, int]) -> list[str]:
        """In the erasure's transaction: count erased rows against every adapter trained on those
        dataset versions; returns the versions marked."""
        marked = []
        for dataset, rows in sorted(rows_per_dataset.items()):
            versions = [r[0] for r in conn.execute(text("SELECT version FROM adapters WHERE dataset = :d"),
                                                   {"d": dataset})]
            conn.execute(text("UPDATE adapters SET erased_rows = erased_rows + :n WHERE dataset = :d"),
                         {"n": rows, "d": dataset})
            marked += versions
        return sorted(set(marked))

    def events(self, version: str | None = None) -> list[dict]:
        """Promotions, rollbacks and archivals, oldest first (all, or one version's)."""
        query = "SELECT * FROM adapter_events" + (" WHERE version = :v" if version else "") + " ORDER BY at, id"
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query), {"v": version})]

    def _active_promotion(self, conn: Connection):
        return conn.execute(text(
            "SELECT id, version FROM adapter_events WHERE action = 'promote' AND undone_at IS NULL "
            "ORDER BY at DESC, id DESC LIMIT 1")).first()

    def serving_version(self) -> str | None:
        with self.engine.connect() as conn:
            row = self._active_promotion(conn)
        return row.version if row else None

    def serving(self) -> AdapterRef | None:
        """The promoted adapter, or None when the base model serves alone. Fails closed: a
        promoted adapter whose files are gone must not silently become the base model."""
        version = self.serving_version()
        if version is None:
            return None
        row = self._row(version)
        path = Path(row["path"])
        if not (path / "adapter_config.json").exists():
            raise ModelUnavailable(f"adapter {version} is promoted, but {path} holds no adapter "
                                   "(restore it, or `helpdesk adapters rollback`)")
        return AdapterRef(version, path, beats_extractive(row["gate"]))

    def ref(self, version: str) -> AdapterRef:
        # Read on every turn of an A/B arm: the row alone, not what serves.
        row = self._row(version)
        path = Path(row["path"])
        if not (path / "adapter_config.json").exists():
            raise ModelUnavailable(f"{path} holds no adapter for {version}")
        return AdapterRef(version, path, beats_extractive(row["gate"]))

    def record_gate(self, version: str, gate: dict) -> None:
        self._row(version)
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE adapters SET gate = :g WHERE version = :v"),
                         {"g": json.dumps(gate), "v": version})

    def check_servable(self, version: str, base_model_hash: str, force: bool = False,
                       reason: str | None = None) -> bool:
        """Refuse a version that must not serve: archived, trained on other base weights, files
        gone, or not through the gate (unless `force`, with a reason). True when it passed the gate."""
        adapter = self.get(version)
        if adapter["status"] == "archived":
            raise Conflict(f"adapter {version} is archived")
        if adapter["base_model_hash"] != base_model_hash:
            raise Conflict(f"adapter {version} was trained on other base weights "
                           f"({adapter['base_model_hash']}, served: {base_model_hash})")
        self.ref(version)
        gate = adapter["gate"]
        passed = bool(gate and gate.get("passed"))
        if not passed:
            why = "failed the evaluation gate" if gate else "has not been through the evaluation gate"
            if not force:
                raise Conflict(f"adapter {version} {why}: see `helpdesk adapters show {version}`; "
                               "serve it anyway with --force --reason TEXT")
            if not (reason or "").strip():
                raise BadInput("--force needs --reason: why this adapter serves without passing the gate")
        return passed

    def promote(self, version: str, actor: str, base_model_hash: str, force: bool = False,
                reason: str | None = None, within: InTransaction | None = None) -> dict:
        """Make `version` serve. It must fit the served base model and have passed the gate;
        `force` (with a reason, which is recorded) promotes one that failed or was never gated.
        `within` writes more in the same transaction (the audit row): both land, or neither."""
        if self.serving_version() == version:
            raise Conflict(f"adapter {version} is already serving")
        passed = self.check_servable(version, base_model_hash, force, reason)
        with self.engine.begin() as conn:
            previous = self._active_promotion(conn)
            conn.execute(text(
                "INSERT INTO adapter_events (id, version, action, actor, at, reason, forced, previous) "
                "VALUES (:id, :v, 'promote', :actor, :at, :reason, :forced, :previous)"
            ), {"id": uuid.uuid4().hex, "v": version, "actor": actor, "at": _now(), "reason": reason,
                "forced": int(not passed), "previous": previous.version if previous else None})
            if within is not None:
                within(conn)
            crash_point("promote.before_commit")
        crash_point("promote.committed")
        return self.get(version)

    def rollback(self, actor: str, reason: str | None = None,
                 within: Callable[[Connection, str | None, str | None], None] | None = None) -> str | None:
        """Undo the newest promotion: what served before it serves again (an earlier adapter,
        or the base model). Returns the version now serving. `within(conn, undone, now)` writes
        more in the same transaction."""
        with self.engine.begin() as conn:
            active = self._active_promotion(conn)
            if active is None:
                raise Conflict("the base model is serving: there is no promotion to roll back")
            undone = conn.execute(text(
                "UPDATE adapter_events SET undone_at = :at WHERE id = :id AND undone_at IS NULL"),
                {"at": _now(), "id": active.id}).rowcount
            if not undone:
                raise Conflict("another rollback got there first")
            now = self._active_promotion(conn)
            conn.execute(text(
                "INSERT INTO adapter_events (id, version, action, actor, at, reason, forced, previous) "
                "VALUES (:id, :v, 'rollback', :actor, :at, :reason, 0, :previous)"
            ), {"id": uuid.uuid4().hex, "v": now.version if now else None, "actor": actor, "at": _now(),
                "reason": reason, "previous": active.version})
            if within is not None:
                within(conn, active.version, now.version if now else None)
            crash_point("rollback.before_commit")
        crash_point("rollback.committed")
        return now.version if now else None

    def archive(self, version: str, actor: str) -> dict:
        """Retire a version for good: it can no longer be promoted (its files stay)."""
        adapter = self.get(version)
        if adapter["serving"]:
            raise Conflict(f"adapter {version} is serving: roll it back before archiving it")
        if adapter["status"] == "archived":
            raise Conflict(f"adapter {version} is already archived")
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE adapters SET status = 'archived' WHERE version = :v"), {"v": version})
            conn.execute(text(
                "INSERT INTO adapter_events (id, version, action, actor, at, forced) "
                "VALUES (:id, :v, 'archive', :actor, :at, 0)"
            ), {"id": uuid.uuid4().hex, "v": version, "actor": actor, "at": _now()})
        return self.get(version)


def m002_erased_rows(conn: Connection) -> None:
    """How many rows of the adapter's dataset were erased since it was trained: it may still
    carry what it learnt from them, so a retrain without them is due."""
    conn.execute(text("ALTER TABLE adapters ADD COLUMN erased_rows INTEGER NOT NULL DEFAULT 0"))


def m001_adapters(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE adapters (
            version VARCHAR(80) PRIMARY KEY,
            path TEXT NOT NULL,
            base_model VARCHAR(200) NOT NULL,
            base_model_hash VARCHAR(64) NOT NULL,
            dataset VARCHAR(64),
            config TEXT,
            metrics TEXT,
            gate TEXT,
            status VARCHAR(12) NOT NULL,
            trained_by VARCHAR(200) NOT NULL,
            job_id VARCHAR(32),
            created_at VARCHAR(40) NOT NULL
        )"""))
    # `version` is NULL on a rollback that leaves the base model serving.
    conn.execute(text("""
        CREATE TABLE adapter_events (
            id VARCHAR(32) PRIMARY KEY,
            version VARCHAR(80),
            action VARCHAR(12) NOT NULL,
            actor VARCHAR(200) NOT NULL,
            at VARCHAR(40) NOT NULL,
            reason TEXT,
            forced INTEGER NOT NULL,
            previous VARCHAR(80),
            undone_at VARCHAR(40)
        )"""))


MIGRATIONS: list[Migration] = [("finetune.003_adapters", m001_adapters),
                               ("finetune.registry.002_erased_rows", m002_erased_rows)]
