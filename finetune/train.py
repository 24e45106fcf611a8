"""Supervised fine-tuning of the generator with a LoRA (or AdaLoRA) adapter, through TRL.

The adapter trains on a dataset version's SFT rows (prompts exactly as served,
passages included; `finetune.datasets`). Checkpoints are written as it goes, so
a killed run resumes from the last one; TensorBoard logs and a loss-curve PNG
sit beside the adapter, and the config, dataset version and base model hash are
saved with it (`helpdesk-adapter.json`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

log = logging.getLogger(__name__)
ADAPTER_META = "helpdesk-adapter.json"


@dataclass
class AdapterConfig:
    """How an adapter is trained; saved with it."""

    method: Literal["lora", "adalora"] = "lora"
    r: int = 8  # rank of the update matrices
    alpha: int = 16  # scaling: the update is multiplied by alpha / r
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # LoRA in only the top this many decoder layers (0: all). The backward pass stops below the
    # lowest adapted layer, so each step costs less: what decides a CPU run's length.
    top_layers: int = 0
    learning_rate: float = 2e-4
    epochs: float = 1.0
    max_length: int = 2048  # prompt + answer tokens; a row whose answer falls past it is dropped
    batch_size: int = 4
    max_steps: int = -1  # > 0 stops after this many optimizer steps (smoke runs, tests)
    save_steps: int = 25  # a checkpoint every this many steps, for resuming
    max_eval_rows: int = 32  # eval loss on at most this many held-out rows (a forward pass each: minutes on a CPU)
    seed: int = 0
    # After SFT, a preference stage on the same adapter: DPO when there are at least this many
    # (correction, raw answer) pairs, else KTO when there are this many thumbs of both kinds.
    # 0 turns it off. LoRA only: AdaLoRA's rank schedule belongs to one trainer run.
    preference_min_rows: int = 16
    beta: float = 0.1  # how far the preference stage may move from the SFT adapter

    def __post_init__(self) -> None:
        if self.method not in ("lora", "adalora"):
            raise ValueError(f"method must be lora or adalora, not {self.method!r}")
        for name in ("r", "alpha", "max_length", "batch_size", "save_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if self.learning_rate <= 0 or self.epochs <= 0 or self.beta <= 0:
            raise ValueError("learning_rate, epochs and beta must be positive")
        if self.top_layers < 0:
            raise ValueError("top_layers must be 0 (every layer) or more")
        if self.preference_min_rows < 0:
            raise ValueError("preference_min_rows must be 0 (off) or more")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")


def peft_config(cfg: AdapterConfig, total_steps: int, layers: int):
    """`layers`: how many decoder layers the base model has."""
    from peft import AdaLoraConfig, LoraConfig

    common = dict(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules),
                  task_type="CAUSAL_LM")
    if 0 < cfg.top_layers < layers:
        common |= dict(layers_to_transform=list(range(layers - cfg.top_layers, layers)), layers_pattern="layers")
    if cfg.method == "adalora":
        # AdaLoRA prunes ranks over the run: it must know how long the run is.
        return AdaLoraConfig(init_r=cfg.r + 4, target_r=cfg.r, total_step=max(total_steps, 2),
                             tinit=0, tfinal=0, **{k: v for k, v in common.items() if k != "r"})
    return LoraConfig(**common)


def model_hash(model_dir: Path) -> str:
    """A hash of the base model's weight files: an adapter only fits the weights it was trained on."""
    digest = hashlib.sha256()
    for path in sorted(model_dir.glob("*.safetensors")):
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def complete_checkpoints(out_dir: Path) -> list[Path]:
    """Checkpoints a resume can start from, oldest first. A worker killed while saving leaves one
    without its trainer state: that one is skipped."""
    found = [p for p in (out_dir / "checkpoints").glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


COLUMNS = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected"),
           "kto": ("prompt", "completion", "label")}


def load_rows(dataset_dir: Path, kind: str, split: str):
    """One kind's rows of a dataset version as a `datasets.Dataset`, or None when there are none."""
    import datasets

    path = dataset_dir / f"{kind}_{split}.jsonl"
    if not path.exists() or not path.stat().st_size:
        return None
    data = datasets.load_dataset("json", data_files=str(path), split="train")
    return data.remove_columns([c for c in data.column_names if c not in COLUMNS[kind]])


def load_sft(dataset_dir: Path, split: str):
    return load_rows(dataset_dir, "sft", split)


def preference_stage(dataset_dir: Path, cfg: AdapterConfig) -> tuple[str, object] | None:
    """("dpo" | "kto", rows) when the dataset has enough preference data for a second stage."""
    if cfg.preference_min_rows <= 0 or cfg.method != "lora":
        return None
    pairs = load_rows(dataset_dir, "dpo", "train")
    if pairs is not None and len(pairs) >= cfg.preference_min_rows:
        return "dpo", pairs
    thumbs = load_rows(dataset_dir, "kto", "train")
    if thumbs is not None:
        ups = sum(bool(x) for x in thumbs["label"])
        if min(ups, len(thumbs) - ups) >= cfg.preference_min_rows // 2 and len(thumbs) >= cfg.preference_min_rows:
            return "kto", thumbs
    return None


def train_sft(model_dir: Path, dataset_dir: Path, out_dir: Path, cfg: AdapterConfig, device: str = "cpu",
              progress: Callable[[int, int, float | None], bool] | None = None) -> dict:
    """Train an adapter on `dataset_dir`'s SFT rows into `out_dir`. `progress(step, total, loss)`
    is called as training goes; returning False stops it (cancel). Resumes from the last
    checkpoint in `out_dir/checkpoints` when there is one. Returns the metrics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    train = load_sft(dataset_dir, "train")
    if train is None or len(train) == 0:
        raise ValueError(f"{dataset_dir} has no SFT training rows: build a dataset with corrections, "
                         "approvals or synthetic rows first")
    evaluation = load_sft(dataset_dir, "eval")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16 if bf16 else torch.float32)
    steps_per_epoch = max(1, -(-len(train) // cfg.batch_size))
    total = cfg.max_steps if cfg.max_steps > 0 else int(steps_per_epoch * cfg.epochs)
    checkpoints = out_dir / "checkpoints"
    args = SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, max_length=cfg.max_length, seed=cfg.seed,
        logging_steps=1, save_steps=cfg.save_steps, save_total_limit=2, report_to=["tensorboard"],
        eval_strategy="no", bf16=bf16,
        use_cpu=not device.startswith("cuda"), dataloader_num_workers=0, disable_tqdm=True,
        completion_only_loss=True,  # learn the answer, not to repeat the passages
        # TRL turns recomputation on by default; it saves GPU memory, but on a CPU (memory enough
        # for a small model) it costs a second forward pass, and it makes the backward pass run
        # through every layer, not only down to the lowest adapted one.
        gradient_checkpointing=device.startswith("cuda"),
    )

    cancelled: list[bool] = []

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress is not None and not progress(state.global_step, total, (logs or {}).get("loss")):
                cancelled.append(True)
                control.should_training_stop = True
                control.should_save = True

    # transformers' TensorBoard callback takes its folder from the environment; this runs in a
    # training worker process of its own, so setting it here touches nothing else.
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(out_dir / "tensorboard")
    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer,
                         peft_config=peft_config(cfg, total, model.config.num_hidden_layers), callbacks=[Report()])
    resumable = complete_checkpoints(out_dir)
    resume = bool(resumable)
    result = trainer.train(resume_from_checkpoint=str(resumable[-1]) if resume else None)
    losses = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    metrics = {"train_loss": round(float(result.training_loss), 4), "steps": trainer.state.global_step,
               "train_rows": len(train), "resumed": resume}
    if evaluation is not None and len(evaluation):
        evaluation = evaluation.select(range(min(len(evaluation), cfg.max_eval_rows)))
        metrics["eval_loss"] = round(float(trainer.evaluate(evaluation)["eval_loss"]), 4)
    trainer.model.save_pretrained(str(out_dir))
    stage = preference_stage(dataset_dir, cfg)
    if stage is not None and not cancelled:
        kind, rows = stage
        more, stage_losses = train_preference(kind, rows, model_dir, out_dir, cfg, device, tokenizer,
                                              trainer.state.global_step, progress)
        metrics |= more
        losses += stage_losses
    plot_losses(losses, out_dir / "loss.png")
    (out_dir / "losses.json").write_text(json.dumps(losses))
    return metrics


def train_preference(kind: str, rows, model_dir: Path, out_dir: Path, cfg: AdapterConfig, device: str, tokenizer,
                     offset: int, progress: Callable[[int, int, float | None], bool] | None) -> tuple[dict, list]:
    """DPO (or KTO) on the SFT adapter just saved in `out_dir`, which it then replaces. The
    reference model is the same network with the adapter switched off (TRL does this for a
    PeftModel), so no second copy of the weights is loaded. Steps continue the SFT count."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    base = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.bfloat16 if bf16 else torch.float32)
    model = PeftModel.from_pretrained(base, str(out_dir), is_trainable=True)
    steps = max(1, -(-len(rows) // cfg.batch_size))
    total = offset + (min(cfg.max_steps, steps) if cfg.max_steps > 0 else int(steps * cfg.epochs))
    Config, Trainer = (DPOConfig, DPOTrainer) if kind == "dpo" else (KTOConfig, KTOTrainer)
    args = Config(output_dir=str(out_dir / f"{kind}-checkpoints"), num_train_epochs=cfg.epochs,
                  max_steps=cfg.max_steps, learning_rate=cfg.learning_rate / 4, beta=cfg.beta,
                  per_device_train_batch_size=cfg.batch_size, max_length=cfg.max_length, seed=cfg.seed,
                  logging_steps=1, save_strategy="no", report_to=["tensorboard"], bf16=bf16,
                  use_cpu=not device.startswith("cuda"), dataloader_num_workers=0, disable_tqdm=True,
                  gradient_checkpointing=device.startswith("cuda"))

    class Report(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress is not None and not progress(offset + state.global_step, total, (logs or {}).get("loss")):
                control.should_training_stop = True

    trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer, callbacks=[Report()])
    result = trainer.train()
    trainer.model.save_pretrained(str(out_dir))
    losses = [(offset + e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
    return {"preference": kind, f"{kind}_loss": round(float(result.training_loss), 4), f"{kind}_rows": len(rows),
            f"{kind}_steps": trainer.state.global_step}, losses


def save_meta(out_dir: Path, cfg: AdapterConfig, meta: dict) -> None:
    (out_dir / ADAPTER_META).write_text(json.dumps({"config": asdict(cfg), **meta}, indent=2))


def plot_losses(losses: list[tuple[int, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if losses:
        ax.plot([s for s, _ in losses], [v for _, v in losses])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("training loss (SFT, then DPO or KTO)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
