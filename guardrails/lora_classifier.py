"""MiniLM fine-tuned with LoRA as a binary text classifier (the second injection model).

Why: the n-gram + frozen-embedding model (`guardrails.text_classifier`) reads
meaning only through one fixed sentence vector. Fine-tuning the encoder itself
learns what separates "ignore my previous message, I found the parcel" from
"ignore your previous instructions". On the injection set, 5-fold
cross-validation gave TPR 0.919 at a 2% FPR on the hard negatives, against
0.858 for the n-gram model, and 0.930 for the two averaged in logit space.

LoRA keeps what we ship small: low-rank updates to the attention and
feed-forward weights plus a one-unit head, 1.4 MB as float16 safetensors, applied to the packaged all-MiniLM-L6-v2 weights at load time and
merged into them, so scoring costs one plain encoder pass. Training runs on a
GPU in a few minutes or on this project's 2-core CPUs in about an hour and a half
(cross-validation is five of the eight trainings): `helpdesk train injection`.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.errors import ModelUnavailable

log = logging.getLogger(__name__)

RANK, ALPHA, DROPOUT = 16, 32, 0.1
TARGETS = ["query", "key", "value", "dense"]  # attention and feed-forward projections
EPOCHS, LEARNING_RATE, BATCH = 8, 1e-3, 32
MAX_TOKENS = 256
SCALE = 10.0  # the head sees unit vectors times this: a usable logit range from the start
WEIGHTS, META = "adapter.safetensors", "meta.json"


def _base(model_path: str | None, device: str):
    import torch
    from transformers import AutoModel, AutoTokenizer

    from core.embeddings import default_model_path

    path = model_path or default_model_path()
    try:  # float32 whatever the checkpoint holds: LoRA trains and merges in full precision
        return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path, dtype=torch.float32).to(device)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot load the encoder for the LoRA classifier from {path}: {exc}") from exc


def _with_lora(model):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=DROPOUT, target_modules=TARGETS))


def _logits(encoder, head, batch: dict):
    import torch

    hidden = encoder(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return head(torch.nn.functional.normalize(pooled, dim=-1) * SCALE).squeeze(-1)


def fit(texts: Sequence[str], positive: np.ndarray, device: str = "cpu", seed: int = 0,
        model_path: str | None = None, epochs: int = EPOCHS):
    """Train LoRA weights and a head; returns (peft encoder, head, tokenizer)."""
    import torch

    torch.manual_seed(seed)
    tokenizer, base = _base(model_path, device)
    encoder = _with_lora(base)
    head = torch.nn.Linear(base.config.hidden_size, 1).to(device)
    params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    optimiser = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=0.01)
    steps = epochs * -(-len(texts) // BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, LEARNING_RATE, total_steps=steps, pct_start=0.1)
    labels = torch.tensor(np.asarray(positive, dtype=np.float32), device=device)
    # Balanced classes: attacks weigh as much in total as benign rows.
    pos_weight = (labels.numel() - labels.sum()) / labels.sum().clamp(min=1)
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]]
    rng = np.random.default_rng(seed)
    encoder.train()
    for epoch in range(epochs):
        for index in length_batches(lengths, BATCH, rng):
            batch = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=MAX_TOKENS,
                              return_tensors="pt").to(device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                _logits(encoder, head, batch), labels[index], pos_weight=pos_weight)
            loss.backward()
            optimiser.step()
            schedule.step()
            optimiser.zero_grad()
        log.info("LoRA classifier: epoch %d of %d, last batch loss %.4f", epoch + 1, epochs, loss.item())
    encoder.eval()
    return encoder, head, tokenizer


def length_batches(lengths: Sequence[int], size: int, rng: np.random.Generator,
                   window: int = 50) -> list[list[int]]:
    """One epoch's batches: rows shuffled, then sorted by length within windows of `window`
    batches, and the batches shuffled. A random batch pads its short messages to its one long
    one (2.4 times the tokens on the injection data); similar lengths together cost about the
    tokens there are, and the windows keep each batch's rows a random draw otherwise."""
    order = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(order), size * window):
        chunk = sorted(order[start:start + size * window], key=lambda i: lengths[i])
        batches += [[int(i) for i in chunk[k:k + size]] for k in range(0, len(chunk), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def out_of_fold(texts: Sequence[str], positive: np.ndarray, device: str = "cpu",
                model_path: str | None = None) -> np.ndarray:
    """Each text scored by a model trained on the other folds (`text_classifier.folds`)."""
    from guardrails.text_classifier import folds

    scores = np.zeros(len(texts))
    splits = folds(texts, positive)
    for k, (train, test) in enumerate(splits):
        encoder, head, tokenizer = fit([texts[i] for i in train], positive[train], device, k, model_path)
        scores[test] = LoraClassifier(encoder, head, tokenizer, {}, device).scores([texts[i] for i in test])
        log.info("LoRA classifier: fold %d of %d scored", k + 1, len(splits))
    return scores


@dataclass
class LoraClassifier:
    """A merged encoder and head, ready to score; `meta` holds what it was trained on."""

    encoder: object
    head: object
    tokenizer: object
    meta: dict
    device: str = "cpu"
    # A fast tokenizer sets its padding and truncation state on each call, and two threads
    # doing so at once can clash ("Already borrowed", huggingface/tokenizers#537): take turns.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Probability of the positive label for each text."""
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), 64):
                batch = self.tokenizer(list(texts[start:start + 64]), padding=True, truncation=True,
                                       max_length=MAX_TOKENS, return_tensors="pt").to(self.device)
                out.append(torch.sigmoid(_logits(self.encoder, self.head, batch)).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)


def save(folder: Path, encoder, head, meta: dict) -> None:
    """LoRA weights and head as float16 safetensors, and the metadata as JSON."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"lora.{k}": v.detach().to("cpu").half().contiguous() for k, v in get_peft_model_state_dict(encoder).items()}
    tensors.update({f"head.{k}": v.detach().to("cpu").half().contiguous() for k, v in head.state_dict().items()})
    save_file(tensors, str(folder / WEIGHTS))
    (folder / META).write_text(json.dumps(meta, indent=1) + "\n")


def load(folder: Path, device: str = "cpu", model_path: str | None = None) -> LoraClassifier:
    """The saved classifier, its LoRA weights merged into the encoder for plain-speed scoring."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if not (folder / WEIGHTS).exists() or not (folder / META).exists():
        raise ModelUnavailable(f"no trained LoRA classifier in {folder}: run `helpdesk train injection`")
    tensors = load_file(str(folder / WEIGHTS))
    tokenizer, base = _base(model_path, device)
    encoder = _with_lora(base)
    lora = {k.removeprefix("lora."): v.float() for k, v in tensors.items() if k.startswith("lora.")}
    result = set_peft_model_state_dict(encoder, lora)
    if getattr(result, "unexpected_keys", None):
        raise ModelUnavailable(f"LoRA weights in {folder} do not fit the encoder: {result.unexpected_keys[:3]}")
    encoder = encoder.merge_and_unload().eval()
    head = torch.nn.Linear(base.config.hidden_size, 1)
    head.load_state_dict({k.removeprefix("head."): v.float() for k, v in tensors.items() if k.startswith("head.")})
    return LoraClassifier(encoder, head.to(device).eval(), tokenizer, json.loads((folder / META).read_text()), device)
