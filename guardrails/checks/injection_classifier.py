"""Prompt injection by a learned classifier: n-grams plus MiniLM vectors (`guardrails.text_classifier`).

It catches what the phrase rules miss: paraphrases, role-play, instructions
hidden in pasted text, data-exfiltration requests, other languages. Trained on
`guardrails/data/injection.jsonl` and `injection_more.jsonl` (attacks, and benign
support messages full of trigger words), with everyday customer messages (`sentiment.jsonl`) and the
sample questions added as benign rows, so short ordinary messages are not
mistaken for attacks.

With `lora: true` (the default) its score is averaged, in logit space, with a
MiniLM encoder fine-tuned with LoRA on the same rows (`guardrails.lora_classifier`),
shipped trained in `guardrails/models/injection-lora`. That model was trained on
a hash of this data: when the data changes, start-up stops until
`helpdesk train injection` has retrained it.

The policy sets two operating points as cross-validated false-positive rates:
a high score blocks, a middling one flags for a reviewer (the answer still goes
through the output checks). `helpdesk eval guardrails` reports both on a
held-out set that nothing was tuned on.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from core.jsonl import read_jsonl
from core.errors import ModelUnavailable
from guardrails.heads import DATA, data_hash, load_labelled
from guardrails.registry import CheckContext, Params, register
from guardrails.text import normalise
from guardrails.text_classifier import (FOLDS, TextClassifier, classifier_for, out_of_fold_scores,
                                        threshold_for_fpr)
from guardrails.verdict import Action, CheckResult
from core.embeddings import Recent

# Attacks and hard negatives: the first set, and a second writer's in the registers the first
# had few of (agents' notes, pasted text, requests for the company's own wording).
LABELLED = (DATA / "injection.jsonl", DATA / "injection_more.jsonl")
HELD_OUT = DATA / "injection_heldout.jsonl"
LORA_DIR = Path(__file__).parents[1] / "models" / "injection-lora"
EVERYDAY = (DATA / "sentiment.jsonl", Path(__file__).parents[2] / "retrieval" / "sample_questions.jsonl")


def everyday_messages() -> list[str]:
    """Ordinary customer messages: the sentiment set's and the sample questions."""
    return [r.get("text", r.get("question")) for path in EVERYDAY
            for r in read_jsonl(path, lambda r: isinstance(r.get("text", r.get("question")), str),
                                "'text' or 'question'")]


def labelled_rows() -> list[dict]:
    """The labelled attacks and hard negatives, file after file."""
    return [row for path in LABELLED for row in load_labelled(path, ("attack", "benign"))]


def training_rows() -> list[dict]:
    """The labelled attacks and hard negatives, plus everyday messages as benign rows."""
    return labelled_rows() + [{"text": t, "label": "benign"} for t in everyday_messages()]


def injection_classifier(embedder, cache_dir: Path | None) -> TextClassifier:
    # Vectors differ a little between embedding precisions: one cached model for each.
    name = f"injection-classifier-{getattr(embedder, 'precision', 'fp32')}.json"
    return classifier_for(embedder, training_rows(), "attack", cache_dir / name if cache_dir else None)


def combine(ngram: np.ndarray, lora: np.ndarray) -> np.ndarray:
    """The two models' probabilities averaged in logit space."""
    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    return 1.0 / (1.0 + np.exp(-(logit(ngram) + logit(lora)) / 2))


@lru_cache(maxsize=2)
def lora_classifier(folder: Path = LORA_DIR, device: str = "cpu"):
    """The shipped LoRA classifier; start-up stops if it is missing or was trained on other data."""
    from guardrails.lora_classifier import load

    model = load(folder, device)
    wanted = data_hash(training_rows())
    if wanted not in (model.meta.get("trained_on"), model.meta.get("base")):
        raise ModelUnavailable(
            f"the LoRA injection classifier in {folder} was trained on other data "
            f"({model.meta.get('trained_on')}, the data is now {wanted}): run `helpdesk train injection`")
    return model


def lora_dir(cache_dir: Path | None) -> Path:
    """The LoRA model to serve: one retrained with reviewers' labels in the data directory, if
    there is one, else the shipped one."""
    if cache_dir is not None and (cache_dir / "injection-lora").is_dir():
        return cache_dir / "injection-lora"
    return LORA_DIR


def train_lora(embedder, device: str = "cpu", folder: Path = LORA_DIR, model_path: str | None = None,
               extra: list[dict] | None = None) -> dict:
    """Retrain the LoRA classifier on the current data (plus `extra` labelled rows, reviewers'
    labels): cross-validated scores of the pair (for thresholds), then the final fit on every
    row. Returns the metadata saved with it."""
    from guardrails.lora_classifier import fit, out_of_fold, save

    shipped = training_rows()
    rows = shipped + list(extra or [])
    texts = [normalise(r["text"]) for r in rows]
    positive = np.asarray([r["label"] == "attack" for r in rows])
    lora_oof = out_of_fold(texts, positive, device, model_path)
    encoder, head, _ = fit(texts, positive, device, 0, model_path)
    meta = lora_meta(rows, out_of_fold_scores(texts, np.asarray(embedder.embed(texts)), positive), lora_oof, device)
    meta["base"] = data_hash(shipped)
    meta["positive"] = [int(p) for p in positive]
    meta["extra_rows"] = len(rows) - len(shipped)
    save(folder, encoder, head, meta)
    lora_classifier.cache_clear()
    return meta


def lora_meta(rows: list[dict], ngram_oof: np.ndarray, lora_oof: np.ndarray, device: str) -> dict:
    """What the check needs besides the weights: the data hash, and the pair's out-of-fold
    scores (thresholds come from the benign ones; `eval guardrails` rates the attacks)."""
    from guardrails.lora_classifier import EPOCHS, RANK

    positive = np.asarray([r["label"] == "attack" for r in rows])
    pair = combine(ngram_oof, lora_oof)
    return {"trained_on": data_hash(rows), "rows": len(rows), "attacks": int(positive.sum()), "folds": FOLDS,
            "rank": RANK, "epochs": EPOCHS, "trained_with": device,
            "out_of_fold": [round(float(x), 6) for x in pair]}


class InjectionClassifierParams(Params):
    block_fpr: float = Field(0.005, ge=0.0, le=1.0,
                             description="Block at the score whose cross-validated false-positive rate is this.")
    flag_fpr: float = Field(0.015, ge=0.0, le=1.0, description="Flag for review at this false-positive rate.")
    lora: bool = Field(True, description="Average with the LoRA-tuned MiniLM classifier.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.block_fpr > self.flag_fpr:
            raise ValueError("block_fpr must not exceed flag_fpr (blocking needs the stronger evidence)")
        return self


@register
class InjectionClassifierCheck:
    name: ClassVar[str] = "injection_classifier"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[InjectionClassifierParams]] = InjectionClassifierParams
    needs: ClassVar[tuple[str, ...]] = ("embedder", "cache_dir")

    def __init__(self, params: InjectionClassifierParams, embedder, cache_dir=None) -> None:
        self.embedder = embedder
        self.model = injection_classifier(embedder, cache_dir)
        self.lora = lora_classifier(lora_dir(cache_dir), _device(embedder)) if params.lora else None
        if self.lora is None:
            benign = self.model.benign_scores
        else:  # the pair's own cross-validated scores, on the rows it was trained on
            positive = np.asarray(self.lora.meta.get("positive")
                                  or [r["label"] == "attack" for r in training_rows()], dtype=bool)
            benign = np.sort(np.asarray(self.lora.meta["out_of_fold"])[~positive])
        self.block_at = threshold_for_fpr(benign, params.block_fpr)
        self.flag_at = threshold_for_fpr(benign, params.flag_fpr)
        self._recent = Recent()  # LoRA scores of the last messages: prefetch, then check

    def prefetch(self, original: str) -> None:
        """Score the message with the LoRA model while the guard runs PII detection."""
        if self.lora is not None:
            self._lora_score(original)

    def _lora_score(self, typed: str) -> float:
        remembered = self._recent.get(typed)
        if remembered is not None:
            return remembered
        [score] = self.lora.scores([normalise(typed)])
        self._recent.put(typed, float(score))
        return float(score)

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        # The message as typed, which is what the classifier learned from: redaction can turn
        # foreign words into <PERSON> and hide an attack. Scored in memory, never stored. The
        # sentiment and topic checks embed the same text, so a turn embeds it once.
        typed = ctx.original or text
        [score] = self.model.scores([typed], np.asarray(self.embedder.embed([typed])))
        scores = {"attack_ngram": round(float(score), 4)}
        if self.lora is not None:
            tuned = self._lora_score(typed)
            scores["attack_lora"] = round(tuned, 4)
            [score] = combine(np.array([score]), np.array([tuned]))
        score = float(score)
        scores["attack"] = round(score, 4)
        if score >= self.block_at:
            return CheckResult(self.name, Action.BLOCK, ("prompt_injection:classifier",), scores)
        if score >= self.flag_at:
            return CheckResult(self.name, Action.FLAG, ("prompt_injection:classifier",), scores)
        return CheckResult(self.name, Action.ALLOW, (), scores)


def _device(embedder) -> str:
    """Score where the embedding model runs (a GPU when there is one)."""
    device = getattr(getattr(embedder, "model", None), "device", None)
    return "cuda" if device is not None and getattr(device, "type", "") == "cuda" else "cpu"
