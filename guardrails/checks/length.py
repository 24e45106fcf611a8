"""Empty or over-long input is blocked before anything else looks at it."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult


class LengthParams(Params):
    min_chars: int = Field(1, ge=1)
    max_chars: int = Field(4000, ge=1)


@register
class LengthCheck:
    name: ClassVar[str] = "length"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[LengthParams]] = LengthParams

    def __init__(self, params: LengthParams) -> None:
        self.params = params

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        size = len(text.strip())
        if size < self.params.min_chars:
            return CheckResult(self.name, Action.BLOCK, ("empty_input",), {"chars": size})
        if size > self.params.max_chars:
            return CheckResult(self.name, Action.BLOCK, ("too_long",), {"chars": size})
        return CheckResult(self.name, Action.ALLOW, (), {"chars": size})
