"""Prompt injection by a learned classifier: n-grams plus MiniLM vectors (`guardrails.text_classifier`).

It catches what the phrase rules miss: paraphrases, role-play, instructions
hidden in pasted text, data-exfiltration requests, other languages. Trained on
`guardrails/data/injection.jsonl` (attacks, and benign support messages full of
trigger words), with everyday customer messages (`sentiment.jsonl`) and the
sample questions added as benign rows, so short ordinary messages are not
mistaken for attacks.

The policy sets two operating points as cross-validated false-positive rates:
a high score blocks, a middling one flags for a reviewer (the answer still goes
through the output checks). `helpdesk eval guardrails` reports both on a
held-out set that nothing was tuned on.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from assistant.jsonl import read_jsonl
from guardrails.heads import DATA, load_labelled
from guardrails.registry import CheckContext, Params, register
from guardrails.text_classifier import TextClassifier, classifier_for
from guardrails.verdict import Action, CheckResult

LABELLED = DATA / "injection.jsonl"
HELD_OUT = DATA / "injection_heldout.jsonl"
EVERYDAY = (DATA / "sentiment.jsonl", Path(__file__).parents[2] / "retrieval" / "sample_questions.jsonl")


def everyday_messages() -> list[str]:
    """Ordinary customer messages: the sentiment set's and the sample questions."""
    return [r.get("text", r.get("question")) for path in EVERYDAY
            for r in read_jsonl(path, lambda r: isinstance(r.get("text", r.get("question")), str),
                                "'text' or 'question'")]


def training_rows() -> list[dict]:
    """The labelled attacks and hard negatives, plus everyday messages as benign rows."""
    return load_labelled(LABELLED, ("attack", "benign")) + [{"text": t, "label": "benign"} for t in everyday_messages()]


def injection_classifier(embedder, cache_dir: Path | None) -> TextClassifier:
    # Vectors differ a little between embedding precisions: one cached model for each.
    name = f"injection-classifier-{getattr(embedder, 'precision', 'fp32')}.json"
    return classifier_for(embedder, training_rows(), "attack", cache_dir / name if cache_dir else None)


class InjectionClassifierParams(Params):
    block_fpr: float = Field(0.005, ge=0.0, le=1.0,
                             description="Block at the score whose cross-validated false-positive rate is this.")
    flag_fpr: float = Field(0.03, ge=0.0, le=1.0, description="Flag for review at this false-positive rate.")

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
        self.block_at = self.model.threshold_for_fpr(params.block_fpr)
        self.flag_at = self.model.threshold_for_fpr(params.flag_fpr)

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        # The message as typed, which is what the classifier learned from: redaction can turn
        # foreign words into <PERSON> and hide an attack. Scored in memory, never stored. The
        # sentiment and topic checks embed the same text, so a turn embeds it once.
        typed = ctx.original or text
        [score] = self.model.scores([typed], np.asarray(self.embedder.embed([typed])))
        score = float(score)
        scores = {"attack": round(score, 4)}
        if score >= self.block_at:
            return CheckResult(self.name, Action.BLOCK, ("prompt_injection:classifier",), scores)
        if score >= self.flag_at:
            return CheckResult(self.name, Action.FLAG, ("prompt_injection:classifier",), scores)
        return CheckResult(self.name, Action.ALLOW, (), scores)
