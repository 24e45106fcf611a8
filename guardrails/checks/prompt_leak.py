"""System-prompt leakage: an answer that repeats a run of the system prompt's words is blocked."""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

_WORDS = re.compile(r"[a-z0-9']+")


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


class PromptLeakParams(Params):
    ngram: int = Field(8, ge=3, le=50, description="Consecutive words shared with the system prompt that count as a leak.")
    action: Literal["flag", "block"] = "block"


@register
class PromptLeakCheck:
    name: ClassVar[str] = "prompt_leak"
    stages: ClassVar[tuple[str, ...]] = ("output",)
    Params: ClassVar[type[PromptLeakParams]] = PromptLeakParams

    def __init__(self, params: PromptLeakParams) -> None:
        self.params = params

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        if not ctx.system_prompt:
            return CheckResult(self.name, Action.ALLOW, (), {})
        # Look back far enough into what was already released for a run that spans pieces; a run
        # wholly inside it was checked when its own piece was.
        window = " ".join(_WORDS.findall(ctx.prior_text.lower())[-(self.params.ngram - 1):] + [text])
        shared = _ngrams(window, self.params.ngram) & _ngrams(ctx.system_prompt, self.params.ngram)
        if not shared:
            return CheckResult(self.name, Action.ALLOW, (), {"shared_ngrams": 0})
        return CheckResult(self.name, Action(self.params.action), ("prompt_leak",), {"shared_ngrams": len(shared)})
