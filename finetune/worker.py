"""The training worker: `python -m finetune.worker JOB_ID --db URL` runs one job to its end.

Run again on a job whose worker died, it resumes from the job's last checkpoint.
Only the job's row is written while it trains; the adapter lands in its folder
with `helpdesk-adapter.json` (config, dataset version, base model and its hash,
metrics, who trained it), is registered as a candidate in the adapter registry,
and is not served until it is promoted.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger("helpdesk.worker")


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
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run(args.job_id, args.db)


if __name__ == "__main__":
    sys.exit(main())
