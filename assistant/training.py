"""Training jobs from the app: start one in a worker process of its own, follow it, cancel it.

`python -m assistant.training JOB_ID --db URL` is that worker: it trains
(`finetune.worker.run`: checkpoints, resume, cancel) and then, when the job asks for
it, runs the evaluation gate on the new adapter in the same process, so neither
ever runs inside the server. The CLI (`helpdesk train generator`) and the
Retraining tab both start jobs here.
"""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from assistant.actor import Actor, require
from core.errors import BadInput
from finetune.datasets import latest_version
from finetune.jobs import Jobs
from finetune.train import AdapterConfig
from finetune.worker import LIVE_LOSSES, prepare_process

log = logging.getLogger(__name__)


class TrainingService:
    def __init__(self, services) -> None:
        self.services = services
        self.jobs = Jobs(services.engine)

    def create(self, actor: Actor, method: str = "lora", epochs: float = 1.0, max_steps: int = -1,
               learning_rate: float = 2e-4, rank: int = 8, dataset: str | None = None, device: str = "cpu",
               gate: dict | None = None, top_layers: int = 0, preference_min_rows: int = 16) -> str:
        """A queued job to train an adapter on `dataset` (default: the latest built) and, when
        `gate` is given ({"questions", "rows", "margin"}), gate it against what serves."""
        require(actor, "admin")
        dataset = dataset or latest_version(self.services.engine)
        if dataset is None:
            raise BadInput("no dataset yet: run `helpdesk dataset synthesize` and `helpdesk dataset build` first")
        settings = self.services.settings
        dataset_dir = settings.home / "datasets" / dataset
        if not dataset_dir.is_dir():
            raise BadInput(f"dataset {dataset} is not in {dataset_dir.parent}")
        try:
            cfg = AdapterConfig(method=method, epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
                                r=rank, top_layers=top_layers, preference_min_rows=preference_min_rows)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        version = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{dataset[:6]}"
        job_id = self.jobs.create("train_generator", {
            "version": version, "dataset": dataset, "dataset_dir": str(dataset_dir),
            "model_dir": str(self.services.model_dir), "base_model": settings.model.name,
            "out_dir": str(settings.adapters_dir / version), "device": device, "adapter": asdict(cfg),
            "gate": gate, "settings": settings.model_dump(mode="json")}, actor.id)
        self.services.audit.record(actor, "training_started", job_id, version=version, dataset=dataset,
                                   method=method, max_steps=max_steps)
        return job_id

    def spawn(self, job_id: str, stdout: IO | None = None) -> subprocess.Popen:
        """Run (or resume) the job in its own process; its output goes to `stdout`, or to the
        job's log file under the data directory."""
        log_file = None
        if stdout is None:
            logs = self.services.settings.home / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            stdout = log_file = (logs / f"job-{job_id}.log").open("ab")
        try:
            # Its own session: a Ctrl-C meant for the caller does not kill it mid-save; cancelling
            # goes through the job's row, and the worker stops at its next step.
            return subprocess.Popen([sys.executable, "-m", "assistant.training", job_id,
                                     "--db", self.services.settings.db_url],
                                    stdout=stdout, stderr=subprocess.STDOUT if stdout is not sys.stderr else None,
                                    start_new_session=True)
        finally:
            if log_file is not None:
                log_file.close()  # the worker holds its own copy

    def start(self, actor: Actor, **options) -> str:
        """Create and run a job in the background (the UI's way): the server does not wait for it."""
        job_id = self.create(actor, **options)
        worker = self.spawn(job_id)
        threading.Thread(target=worker.wait, daemon=True, name=f"job-{job_id}").start()  # reaps it when done
        return job_id

    def cancel(self, actor: Actor, job_id: str) -> dict:
        require(actor, "admin")
        job = self.jobs.cancel(job_id)
        self.services.audit.record(actor, "training_cancelled", job_id)
        return job

    def status(self, job_id: str) -> dict:
        """The job with its live loss curve ([step, loss] pairs)."""
        job = self.jobs.get(job_id)
        path = Path(job["config"]["out_dir"]) / LIVE_LOSSES
        losses = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    losses.append(json.loads(line))
                except json.JSONDecodeError:  # a line being written as we read
                    continue
        return job | {"losses": losses}

    def latest(self) -> dict | None:
        found = [j for j in self.jobs.list(20) if j["kind"] == "train_generator"]
        return self.status(found[0]["id"]) if found else None


def run_job(job_id: str, db_url: str) -> int:
    """Train, then gate when the job asks for it. Exit 0 when trained (whatever the gate
    decided), 1 on failure, 3 when cancelled."""
    from core.db import connect
    from finetune import worker

    code = worker.run(job_id, db_url)
    jobs = Jobs(connect(db_url))
    job = jobs.get(job_id)
    gate_options = job["config"].get("gate")
    if code != 0 or not gate_options:
        return code
    from assistant.app import Services
    from assistant.gate import gate_version
    from core.settings import Settings

    jobs.note(job_id, "trained; running the evaluation gate")
    try:
        services = Services(Settings.model_validate(job["config"]["settings"]))
        last = [0.0]

        def progress(note: str) -> None:  # at most one write a second
            if time.monotonic() - last[0] >= 1:
                last[0] = time.monotonic()
                jobs.note(job_id, note)

        gate = gate_version(services, job["config"]["version"], None, **gate_options, progress=progress)
    except Exception as exc:
        log.exception("the evaluation gate failed on job %s", job_id)
        jobs.note(job_id, f"trained, but the gate could not run: {type(exc).__name__}: {exc}")
        return 0
    jobs.note(job_id, f"gate {'passed' if gate['passed'] else 'failed'}",
              job["result"] | {"gate": {"passed": gate["passed"], "difference": gate["difference"],
                                        "ci": gate["ci"], "reasons": gate["reasons"]}})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assistant.training")
    parser.add_argument("job_id")
    parser.add_argument("--db", required=True, help="the SQLAlchemy URL of the helpdesk database")
    args = parser.parse_args(argv)
    prepare_process()
    return run_job(args.job_id, args.db)


if __name__ == "__main__":
    sys.exit(main())
