"""Prompt injection by the packaged NanoGuard model (`metatronnanoguard`, a 16.8M-parameter classifier).

Opt-in, not in the default policy: on this project's held-out injection set its
ROC AUC is 0.75 (TPR 0.28 at FPR 0.02), well below `injection_classifier`.
It was trained on other data, so it can still add a second opinion. Install it
with `pip install .[nanoguard]`; the package is pinned because it loads a
pickled tokenizer.

NanoGuard pads every input to 512 tokens (~90 ms a scan on 2 CPU cores). Its
attention ignores the padding mask, so padding changes scores a little; scoring
the unpadded tokens took 11 ms with the same AUC on the held-out set, and is
what `padded: false` (the default) does.
"""
from __future__ import annotations

import threading
from typing import ClassVar, Literal

from pydantic import Field

from core.errors import ModelUnavailable
from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult


class NanoGuardParams(Params):
    threshold: float = Field(0.9, ge=0.0, le=1.0, description="Injection probability at or above which to act.")
    action: Literal["flag", "block"] = "flag"
    padded: bool = Field(False, description="Pad to 512 tokens as NanoGuard's own scan() does (8x slower).")


@register
class NanoGuardCheck:
    name: ClassVar[str] = "nanoguard"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[NanoGuardParams]] = NanoGuardParams

    def __init__(self, params: NanoGuardParams) -> None:
        try:
            from nanoguard.scanner import NanoGuard
        except ImportError as exc:
            raise ModelUnavailable("the nanoguard check needs its model: pip install '.[nanoguard]'") from exc
        self.params = params
        self.scanner = NanoGuard(device="cpu")
        self._lock = threading.Lock()

    def score(self, text: str) -> float:
        import torch

        if self.params.padded:
            return self.scanner.scan(text).injection_score
        ids = self.scanner.tokenizer.encode(text, max_length=self.scanner.config.sequence_len)
        with self._lock, torch.no_grad():
            logits = self.scanner.model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.bool))
        return float(torch.softmax(logits.float(), dim=-1)[0, 1])

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        score = self.score(ctx.original or text)  # as typed: the model never saw placeholders
        scores = {"nanoguard": round(score, 4)}
        if score >= self.params.threshold:
            return CheckResult(self.name, Action(self.params.action), ("prompt_injection:nanoguard",), scores)
        return CheckResult(self.name, Action.ALLOW, (), scores)
