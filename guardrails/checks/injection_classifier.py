"""Prompt injection by a learned classifier: a logistic-regression head on MiniLM vectors.

Trained on `guardrails/data/injection.jsonl` (attacks, and benign support
questions that use trigger words such as "ignore" or "system"). It catches
what phrase rules miss: paraphrases, role-play, data-exfiltration requests,
other languages. Cross-validated TPR/FPR is in `helpdesk eval guardrails`.

Not in the default policy: on 194 labelled rows it still scores some ordinary
short messages ("thanks") as attacks, so it is opt-in, flags rather than
blocks by default, and ignores messages under `min_words`.

The packaged NanoGuard classifier was measured on the same set and not used:
TPR 0.48 at FPR 0.02 (0.71 at FPR 0.10), and 74 ms a scan on 2 cores because
it pads every input to 512 tokens.
"""
from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from guardrails.heads import DATA, head_for
from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

LABELS = ("attack", "benign")
LABELLED = DATA / "injection.jsonl"
REGULARISATION = 16.0  # chosen by 5-fold cross-validation on the labelled set


class InjectionClassifierParams(Params):
    threshold: float = Field(0.8, ge=0.0, le=1.0, description="Attack probability at or above which to act.")
    action: Literal["flag", "block"] = "flag"
    min_words: int = Field(6, ge=0, description="Shorter messages are not scored: too little to judge.")


@register
class InjectionClassifierCheck:
    name: ClassVar[str] = "injection_classifier"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[InjectionClassifierParams]] = InjectionClassifierParams
    needs: ClassVar[tuple[str, ...]] = ("embedder", "cache_dir")

    def __init__(self, params: InjectionClassifierParams, embedder, cache_dir=None) -> None:
        self.params = params
        self.embedder = embedder
        cache = cache_dir / "injection-head.json" if cache_dir else None
        self.head = head_for(embedder, LABELLED, LABELS, cache, c=REGULARISATION)

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        if len(text.split()) < self.params.min_words:
            return CheckResult(self.name, Action.ALLOW, (), {})
        [probs] = self.head.predict(np.asarray(self.embedder.embed([text])))
        score = probs["attack"]
        if score >= self.params.threshold:
            return CheckResult(self.name, Action(self.params.action), ("prompt_injection:classifier",),
                               {"attack": score})
        return CheckResult(self.name, Action.ALLOW, (), {"attack": score})
