"""Topics the assistant must not discuss, recognised by keyword phrases."""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field

from guardrails.checks.prompt_injection import normalise
from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult


class BannedTopicsParams(Params):
    action: Literal["flag", "block"] = "block"
    topics: dict[str, list[str]] = Field(min_length=1, description="Topic name -> keyword phrases.")


@register
class BannedTopicsCheck:
    name: ClassVar[str] = "banned_topics"
    stages: ClassVar[tuple[str, ...]] = ("input", "output")
    Params: ClassVar[type[BannedTopicsParams]] = BannedTopicsParams

    def __init__(self, params: BannedTopicsParams) -> None:
        self.action = Action(params.action)
        # Whole-word phrase match, so "vote" does not fire on "devoted".
        self.topics = {
            topic: re.compile(r"\b(" + "|".join(re.escape(k.lower()) for k in words) + r")\b")
            for topic, words in params.topics.items() if words
        }

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        norm = normalise(text)
        found = [topic for topic, rule in self.topics.items() if rule.search(norm)]
        if found:
            return CheckResult(self.name, self.action, tuple(f"banned_topic:{t}" for t in found), {"topics": len(found)})
        return CheckResult(self.name, Action.ALLOW, (), {"topics": 0})
