"""Training jobs: a table of jobs with state, progress and ETA, run by a worker process.

A job runs in `python -m finetune.worker JOB_ID`, never in the server. The worker
writes progress to the job's row as it trains and reads the row's cancel flag;
a job whose worker was killed stays `running` with a dead pid, and running the
worker again on it resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone

from sqlalchemy import Connection, Engine, text

from core.db import Migration
from core.errors import Conflict, NotFound

STATES = ("queued", "running", "done", "failed", "cancelled")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _decoded(row) -> dict:
    job = dict(row._mapping)
    for key in ("config", "result"):
        job[key] = json.loads(job[key]) if job[key] else None
    job["cancel_requested"] = bool(job["cancel_requested"])
    return job


class Jobs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, config: dict, created_by: str) -> str:
        job_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO jobs (id, kind, state, step, total, config, created_by, created_at, cancel_requested) "
                "VALUES (:id, :kind, 'queued', 0, 0, :config, :by, :at, 0)"
            ), {"id": job_id, "kind": kind, "config": json.dumps(config), "by": created_by, "at": _now().isoformat()})
        return job_id

    def get(self, job_id: str) -> dict:
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM jobs WHERE id = :id"), {"id": job_id}).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return _decoded(row)

    def list(self, limit: int = 50) -> list[dict]:
        with self.engine.connect() as conn:
            return [_decoded(r) for r in conn.execute(
                text("SELECT * FROM jobs ORDER BY created_at DESC LIMIT :n"), {"n": limit})]

    def start(self, job_id: str) -> None:
        job = self.get(job_id)
        if job["state"] not in ("queued", "running", "failed", "cancelled"):
            raise Conflict(f"job {job_id} is {job['state']}")
        with self.engine.begin() as conn:
            conn.execute(text(
                "UPDATE jobs SET state = 'running', pid = :pid, started_at = :at, message = NULL, "
                "cancel_requested = 0 WHERE id = :id"), {"pid": os.getpid(), "at": _now().isoformat(), "id": job_id})

    def progress(self, job_id: str, step: int, total: int, loss: float | None) -> bool:
        """Record progress and an ETA from the pace so far; False when a cancel was requested."""
        job = self.get(job_id)
        started = datetime.fromisoformat(job["started_at"])
        done_since = max(step - (job["resumed_at_step"] or 0), 0)
        elapsed = (_now() - started).total_seconds()
        eta = round(elapsed / done_since * (total - step), 1) if done_since else None
        with self.engine.begin() as conn:
            conn.execute(text(
                "UPDATE jobs SET step = :s, total = :t, loss = COALESCE(:l, loss), eta_s = :eta WHERE id = :id"
            ), {"s": step, "t": total, "l": loss, "eta": eta, "id": job_id})
        return not job["cancel_requested"]

    def resumed_at(self, job_id: str, step: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET resumed_at_step = :s WHERE id = :id"), {"s": step, "id": job_id})

    def finish(self, job_id: str, state: str, result: dict | None = None, message: str | None = None) -> None:
        if state not in ("done", "failed", "cancelled"):
            raise ValueError(f"a job ends done, failed or cancelled, not {state!r}")
        with self.engine.begin() as conn:
            conn.execute(text(
                "UPDATE jobs SET state = :state, result = :result, message = :m, finished_at = :at, eta_s = NULL "
                "WHERE id = :id"), {"state": state, "result": json.dumps(result) if result else None, "m": message,
                                    "at": _now().isoformat(), "id": job_id})

    def note(self, job_id: str, message: str, result: dict | None = None) -> None:
        """A message on the job (and its result, when given): what it is doing after training."""
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET message = :m" + (", result = :r" if result is not None else "") +
                              " WHERE id = :id"), {"m": message, "r": json.dumps(result), "id": job_id})

    def cancel(self, job_id: str) -> dict:
        """Ask a queued or running job to stop (the worker stops at its next step, keeping its
        last checkpoint); a job that has ended cannot be cancelled."""
        job = self.get(job_id)
        if job["state"] not in ("queued", "running"):
            raise Conflict(f"job {job_id} is {job['state']}: nothing to cancel")
        with self.engine.begin() as conn:
            conn.execute(text("UPDATE jobs SET cancel_requested = 1 WHERE id = :id"), {"id": job_id})
            if job["state"] == "queued":
                conn.execute(text("UPDATE jobs SET state = 'cancelled', finished_at = :at WHERE id = :id"),
                             {"at": _now().isoformat(), "id": job_id})
        return self.get(job_id)


def m001_jobs(conn: Connection) -> None:
    conn.execute(text("""
        CREATE TABLE jobs (
            id VARCHAR(32) PRIMARY KEY,
            kind VARCHAR(40) NOT NULL,
            state VARCHAR(12) NOT NULL,
            step INTEGER NOT NULL,
            total INTEGER NOT NULL,
            loss REAL,
            eta_s REAL,
            resumed_at_step INTEGER,
            config TEXT NOT NULL,
            result TEXT,
            message TEXT,
            pid INTEGER,
            cancel_requested INTEGER NOT NULL,
            created_by VARCHAR(200) NOT NULL,
            created_at VARCHAR(40) NOT NULL,
            started_at VARCHAR(40),
            finished_at VARCHAR(40)
        )"""))


MIGRATIONS: list[Migration] = [("finetune.002_jobs", m001_jobs)]
