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


def _write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _preference_dataset(folder, with_pairs: bool):
    folder.mkdir()
    prompts = [[{"role": "system", "content": "Answer from the passages."},
                {"role": "user", "content": f"Context:\n[1] (faq.md)\nReturns take {d} days.\n\nQuestion: how long?"}]
               for d in (10, 20, 30, 40)]
    answers = [[{"role": "assistant", "content": f"Returns take {d} days [1]."}] for d in (10, 20, 30, 40)]
    wrong = [[{"role": "assistant", "content": "Visit www.example.com/returns for a refund."}]] * 4
    _write_jsonl(folder / "sft_train.jsonl", [{"prompt": p, "completion": a} for p, a in zip(prompts, answers)])
    if with_pairs:
        _write_jsonl(folder / "dpo_train.jsonl",
                     [{"prompt": p, "chosen": a, "rejected": w} for p, a, w in zip(prompts, answers, wrong)])
    else:
        _write_jsonl(folder / "kto_train.jsonl",
                     [{"prompt": p, "completion": a, "label": True} for p, a in zip(prompts, answers)]
                     + [{"prompt": p, "completion": w, "label": False} for p, w in zip(prompts, wrong)])
    return folder


@pytest.mark.parametrize("kind", ["dpo", "kto"])
def test_preference_data_adds_a_dpo_or_kto_stage_after_sft(tiny_model_dir, tmp_path, kind):
    from safetensors.torch import load_file

    from finetune.train import train_sft

    data = _preference_dataset(tmp_path / "data", with_pairs=kind == "dpo")
    cfg = dict(max_length=512, batch_size=2, max_steps=2, save_steps=2)
    sft_only = train_sft(tiny_model_dir, data, tmp_path / "sft", AdapterConfig(preference_min_rows=0, **cfg))
    assert "preference" not in sft_only
    steps = []
    both = train_sft(tiny_model_dir, data, tmp_path / "both", AdapterConfig(preference_min_rows=4, **cfg),
                     progress=lambda step, total, loss: steps.append((step, total)) or True)
    assert both["preference"] == kind and both[f"{kind}_steps"] == 2 and both[f"{kind}_rows"] in (4, 8)
    assert steps[-1] == (4, 4)  # the progress bar counts both stages
    # The preference stage moved the adapter beyond what SFT alone learned.
    a = load_file(str(tmp_path / "sft" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "both" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and any(not (a[k] == b[k]).all() for k in a)
    assert len(json.loads((tmp_path / "both" / "losses.json").read_text())) == 4
    # Too little preference data: SFT only.
    assert "preference" not in train_sft(tiny_model_dir, data, tmp_path / "few",
                                         AdapterConfig(preference_min_rows=50, **cfg))


def test_top_layers_adapts_only_the_top_decoder_layers(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    from finetune.train import train_sft

    data = _preference_dataset(tmp_path / "data", with_pairs=False)
    cfg = dict(max_length=512, batch_size=2, max_steps=1, preference_min_rows=0)
    train_sft(tiny_model_dir, data, tmp_path / "all", AdapterConfig(**cfg))
    train_sft(tiny_model_dir, data, tmp_path / "top", AdapterConfig(top_layers=1, **cfg))

    def layers(name: str) -> set[int]:
        keys = load_file(str(tmp_path / name / "adapter_model.safetensors")).keys()
        return {int(k.split(".layers.")[1].split(".")[0]) for k in keys}

    assert layers("all") == {0, 1}  # the tiny model has two decoder layers
    assert layers("top") == {1}
    with pytest.raises(ValueError):
        AdapterConfig(top_layers=-1)
