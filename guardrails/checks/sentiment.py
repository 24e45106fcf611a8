"""Angry or distressed customers are flagged; an explicit request for a human hands off."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from guardrails.heads import DATA, head_for
from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

LABELS = ("neutral", "angry", "distressed", "human_request")
LABELLED = DATA / "sentiment.jsonl"


class SentimentParams(Params):
    flag_labels: list[str] = Field(["angry", "distressed"], description="Labels that queue the turn for review.")
    handoff_labels: list[str] = Field(["human_request"], description="Labels that hand the chat to a human.")
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)


@register
class SentimentCheck:
    name: ClassVar[str] = "sentiment"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[SentimentParams]] = SentimentParams
    needs: ClassVar[tuple[str, ...]] = ("embedder", "cache_dir")

    def __init__(self, params: SentimentParams, embedder, cache_dir=None) -> None:
        unknown = sorted(set(params.flag_labels + params.handoff_labels) - set(LABELS))
        if unknown:
            raise ValueError(f"unknown labels {unknown}; known: {', '.join(LABELS)}")
        self.params = params
        self.embedder = embedder
        self.head = head_for(embedder, LABELLED, LABELS, cache_dir / "sentiment-head.json" if cache_dir else None)

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        # The message as typed, like the labelled examples; and one embedding per turn is shared
        # with the other input checks. Only scores leave this function.
        [probs] = self.head.predict(np.asarray(self.embedder.embed([ctx.original or text])))
        label = max(probs, key=probs.get)
        scores = {f"p_{k}": v for k, v in probs.items()}
        if probs[label] < self.params.min_confidence:
            return CheckResult(self.name, Action.ALLOW, (), scores)
        if label in self.params.handoff_labels:
            return CheckResult(self.name, Action.HANDOFF, (f"sentiment:{label}",), scores)
        if label in self.params.flag_labels:
            return CheckResult(self.name, Action.FLAG, (f"sentiment:{label}",), scores)
        return CheckResult(self.name, Action.ALLOW, (), scores)
