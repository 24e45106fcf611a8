"""The training worker: `python -m finetune.worker JOB_ID --db URL` runs one job to its end.

Run again on a job whose worker died, it resumes from the job's last checkpoint.
Only the job's row is written while it trains; the adapter lands in its folder
with `helpdesk-adapter.json` (config, dataset version, base model and its hash,
metrics, who trained it), is registered as a candidate in the adapter registry,
and is not served until it is promoted.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("helpdesk.worker")
LIVE_LOSSES = "losses.jsonl"  # [step, loss] per logged step, appended as training goes


def run(job_id: str, db_url: str) -> int:
    from core.db import connect
    from finetune.jobs import Jobs
    from finetune.registry import AdapterRegistry
    from finetune.train import AdapterConfig, complete_checkpoints, model_hash, save_meta, train_sft

    jobs = Jobs(connect(db_url))
    job = jobs.get(job_id)
    config = job["config"]
    out_dir = Path(config["out_dir"])
    checkpoints = complete_checkpoints(out_dir)
    jobs.start(job_id)
    if checkpoints:
        jobs.resumed_at(job_id, int(checkpoints[-1].name.split("-")[1]))
    cancelled = False

    def progress(step: int, total: int, loss: float | None) -> bool:
        nonlocal cancelled
        if loss is not None:  # the live loss curve (the PNG is drawn once the run ends)
            out_dir.mkdir(parents=True, exist_ok=True)
            with (out_dir / LIVE_LOSSES).open("a", encoding="utf-8") as fh:
                fh.write(json.dumps([step, loss]) + "\n")
        keep_going = jobs.progress(job_id, step, total, loss)
        cancelled = cancelled or not keep_going
        return keep_going

    try:
        cfg = AdapterConfig(**config["adapter"])
        metrics = train_sft(Path(config["model_dir"]), Path(config["dataset_dir"]), out_dir, cfg, config["device"],
                            progress)
        if cancelled:
            jobs.finish(job_id, "cancelled", message="cancelled; its last checkpoint is kept for a resume")
            return 3
        meta = {"version": config["version"], "base_model": config["base_model"],
                "base_model_hash": model_hash(Path(config["model_dir"])), "dataset": config["dataset"],
                "trained_by": job["created_by"], "job_id": job_id, "device": config["device"], "metrics": metrics}
        save_meta(out_dir, cfg, meta)
        AdapterRegistry(jobs.engine).register(config["version"], out_dir, {**meta, "config": asdict(cfg)})
        jobs.finish(job_id, "done", {"adapter": config["version"], "path": str(out_dir), "metrics": metrics})
        return 0
    except Exception as exc:
        log.exception("training job %s failed", job_id)
        jobs.finish(job_id, "failed", message=f"{type(exc).__name__}: {exc}")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m finetune.worker")
    parser.add_argument("job_id")
    parser.add_argument("--db", required=True, help="the SQLAlchemy URL of the helpdesk database")
    args = parser.parse_args(argv)
    prepare_process()
    return run(args.job_id, args.db)


def prepare_process() -> None:
    """A worker's environment: weights from local files only, no progress bars, logs on stderr."""
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TOKENIZERS_PARALLELISM", "false"),
                       ("HF_DATASETS_OFFLINE", "1"), ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"),
                       ("ANONYMIZED_TELEMETRY", "False")):
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
