"""Training jobs in a real worker process on the tiny model: cancel, and a killed job resumes."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import pytest

from assistant.actor import Actor
from assistant.datasets import DatasetService
from finetune.jobs import Jobs
from finetune.train import AdapterConfig

ADMIN = Actor("cli:admin", "admin", "cli")


@pytest.fixture(scope="module")
def dataset(services, tmp_path_factory):
    folder = tmp_path_factory.mktemp("datasets")
    service = DatasetService(services.engine, services.store, services.feedback, services.review, folder,
                             services.find_pii, lambda: services.vectors, services.catalog, lambda: services.retriever)
    service.synthesize(ADMIN)
    return service.build(ADMIN).path


def _job(services, dataset, tiny_model_dir, out, **adapter) -> str:
    cfg = AdapterConfig(max_length=1024, batch_size=1, max_eval_rows=4, **adapter)
    return Jobs(services.engine).create("train_generator", {
        "version": out.name, "dataset": dataset.name, "dataset_dir": str(dataset), "model_dir": str(tiny_model_dir),
        "base_model": "tiny", "out_dir": str(out), "device": "cpu", "adapter": asdict(cfg)}, ADMIN.id)


def _worker(services, job_id: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "finetune.worker", job_id, "--db", services.settings.db_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _wait(predicate, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def test_a_killed_job_resumes_from_its_last_checkpoint(services, dataset, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter-resume"
    job_id = _job(services, dataset, tiny_model_dir, out, max_steps=8, save_steps=2)
    jobs = Jobs(services.engine)
    first = _worker(services, job_id)
    _wait(lambda: any((out / "checkpoints").glob("checkpoint-*/trainer_state.json")) or first.poll() is not None)
    first.send_signal(signal.SIGKILL)  # the worker dies mid-run
    first.wait()
    killed = jobs.get(job_id)
    assert killed["state"] == "running" and 2 <= killed["step"] < 8 and killed["pid"] == first.pid, killed
    second = _worker(services, job_id)
    assert second.wait(timeout=300) == 0, second.stderr.read()
    done = jobs.get(job_id)
    assert done["state"] == "done" and done["step"] == 8 and done["resumed_at_step"] >= 2
    assert done["result"]["metrics"]["resumed"] is True and done["result"]["metrics"]["steps"] == 8
    meta = json.loads((out / "helpdesk-adapter.json").read_text())
    assert meta["config"]["max_steps"] == 8 and meta["job_id"] == job_id


def test_a_cancelled_job_stops_and_keeps_its_checkpoint(services, dataset, tiny_model_dir, tmp_path):
    out = tmp_path / "adapter-cancel"
    job_id = _job(services, dataset, tiny_model_dir, out, max_steps=400, save_steps=2, method="adalora")
    jobs = Jobs(services.engine)
    worker = _worker(services, job_id)
    _wait(lambda: jobs.get(job_id)["step"] >= 3 or worker.poll() is not None)
    running = jobs.get(job_id)
    assert running["state"] == "running" and running["eta_s"] is not None and running["total"] == 400
    jobs.cancel(job_id)
    assert worker.wait(timeout=120) == 3, worker.stderr.read()
    stopped = jobs.get(job_id)
    assert stopped["state"] == "cancelled" and stopped["step"] < 400
    assert any((out / "checkpoints").glob("checkpoint-*"))


def test_adapter_configs_refuse_nonsense():
    for bad in ({"method": "qlora"}, {"r": 0}, {"dropout": 1.5}, {"target_modules": []}, {"epochs": 0}):
        with pytest.raises(ValueError):
            AdapterConfig(**bad)
