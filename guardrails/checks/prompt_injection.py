"""Prompt-injection and jailbreak rules: phrases that try to replace the assistant's instructions.

Rules are regular expressions over normalised text. They aim at the shape of an
attack ("ignore ... previous instructions"), not at single trigger words, so a
customer who asks to "ignore my previous order" is not blocked.
"""
from __future__ import annotations

import re
import unicodedata
from typing import ClassVar, Literal

from pydantic import field_validator

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

DEFAULT_RULES: dict[str, str] = {
    "override_instructions": r"\b(ignore|disregard|forget|override|bypass|skip)\b[\w\s,'-]{0,40}?\b(all\s+)?(the\s+|your\s+|any\s+|my\s+)?(previous|prior|above|earlier|preceding|initial|original|system|safety)\s+(instructions?|prompts?|rules|directions|guidelines|messages?|context)",
    "reveal_prompt": r"\b(reveal|show|print|display|repeat|output|tell me|give me|leak|dump|what (is|are))\b[\w\s,'-]{0,40}?\b(system|hidden|initial|original|secret|developer)\s+(prompt|instructions?|message|rules)",
    "role_override": r"\b(you are now|from now on,? you|act as|pretend (to be|you are)|roleplay as|simulate)\b[\w\s,'-]{0,40}?\b(unrestricted|unfiltered|jailbroken|dan|developer mode|no (rules|restrictions|filters|limits)|evil|without (any )?(rules|restrictions|limits|filters))",
    "jailbreak_terms": r"\b(jailbreak|jailbroken|do anything now|developer mode (enabled|on)|dan mode)\b",
    "new_instructions": r"\b(new|updated|real)\s+(system\s+)?(instructions|rules|prompt)\s*:",
    "fake_role_tag": r"(^|\n)\s*(system|assistant|developer)\s*:|<\|?(system|im_start|im_end)\|?>|\[/?(inst|sys)\]",
}


def normalise(text: str) -> str:
    """NFKC folds look-alike characters; zero-width characters are dropped."""
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return folded.lower()


class InjectionParams(Params):
    action: Literal["flag", "block"] = "block"
    rules: dict[str, str] = DEFAULT_RULES
    extra_rules: dict[str, str] = {}

    @field_validator("rules", "extra_rules")
    @classmethod
    def _compiles(cls, rules: dict[str, str]) -> dict[str, str]:
        for name, pattern in rules.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rule {name!r} is not a valid regular expression: {exc}") from exc
        return rules


@register
class PromptInjectionCheck:
    name: ClassVar[str] = "prompt_injection"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[InjectionParams]] = InjectionParams

    def __init__(self, params: InjectionParams) -> None:
        self.action = Action(params.action)
        self.rules = {n: re.compile(p, re.IGNORECASE) for n, p in {**params.rules, **params.extra_rules}.items()}

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        norm = normalise(text)
        hits = [name for name, rule in self.rules.items() if rule.search(norm)]
        if hits:
            return CheckResult(self.name, self.action, tuple(f"prompt_injection:{h}" for h in hits), {"rules_matched": len(hits)})
        return CheckResult(self.name, Action.ALLOW, (), {"rules_matched": 0})
