"""PII in an answer that the (redacted) question did not carry is redacted and flagged."""
from __future__ import annotations

from typing import ClassVar, Literal

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult


class OutputPiiParams(Params):
    action: Literal["flag", "block"] = "flag"


@register
class OutputPiiCheck:
    name: ClassVar[str] = "output_pii"
    stages: ClassVar[tuple[str, ...]] = ("output",)
    Params: ClassVar[type[OutputPiiParams]] = OutputPiiParams
    needs: ClassVar[tuple[str, ...]] = ("redactor",)

    def __init__(self, params: OutputPiiParams, redactor) -> None:
        self.action = Action(params.action)
        self.redactor = redactor

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        redacted, entities = self.redactor.redact(text)
        if not entities:
            return CheckResult(self.name, Action.ALLOW, (), {"entities": 0}, text)
        types = sorted({e.type for e in entities})
        return CheckResult(
            self.name, self.action, tuple(f"output_pii:{t}" for t in types), {"entities": len(entities)}, redacted
        )
