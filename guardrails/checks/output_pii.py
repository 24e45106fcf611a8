"""PII in an answer is redacted and the turn flagged.

Words the answer copies from its passages are left alone: the knowledge base went through
the documents' own redaction policy when it was ingested, and what that policy keeps
(product and plan names the NER takes for people, the places articles name on purpose) is
the company's text, not a customer's data. Redacting it only garbled the answer
("Business accounts can add <PERSON> to any product") and flagged an ordinary turn."""
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
        entities = [e for e in self.redactor.analyze(text)
                    if not any(text[e.start:e.end] in passage for passage in ctx.context_texts)]
        redacted = self.redactor.replace(text, entities)
        if not entities:
            return CheckResult(self.name, Action.ALLOW, (), {"entities": 0}, text)
        types = sorted({e.type for e in entities})
        return CheckResult(
            self.name, self.action, tuple(f"output_pii:{t}" for t in types), {"entities": len(entities)}, redacted
        )
