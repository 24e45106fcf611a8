"""Prompt-injection and jailbreak rules: phrases that try to replace the assistant's instructions.

Rules are regular expressions over normalised text. They aim at the shape of an
attack ("ignore ... previous instructions"), not at single trigger words, so a
customer who asks to "ignore my previous order" or "my previous message" (their
own words, not the assistant's instructions) is not blocked.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import field_validator

from guardrails.registry import CheckContext, Params, register
from guardrails.text import normalise
from guardrails.verdict import Action, CheckResult

DEFAULT_RULES: dict[str, str] = {
    "override_instructions": r"\b(ignore|disregard|forget|override|bypass|skip)\b[\w\s,'-]{0,40}?\b(all\s+)?(the\s+|your\s+|any\s+)?(?<!my )(?<!our )(previous|prior|above|earlier|preceding|initial|original|system|safety)\s+(instructions?|prompts?|rules|directions|guidelines|messages|context)",
    "reveal_prompt": r"\b(reveal|show|print|display|repeat|output|tell me|give me|leak|dump|what (is|are))\b[\w\s,'-]{0,40}?\b(system|hidden|initial|original|secret|developer)\s+(prompt|instructions?|message|rules)",
    "role_override": r"\b(you are now|from now on,? you|act as|pretend (to be|you are)|roleplay as|simulate)\b[\w\s,'-]{0,40}?\b(unrestricted|unfiltered|jailbroken|dan|developer mode|no (rules|restrictions|filters|limits)|evil|without (any )?(rules|restrictions|limits|filters))",
    # "Jailbreak" alone is also what people do to phones and speakers: the AI must be the object.
    "jailbreak_terms": r"\b(jailbreak (mode|prompt)|(you|assistant|ai|model|chatbot|bot)( are| is|'re)? (now )?jailbroken|jailbreak (yourself|the (ai|assistant|bot|model|chatbot))|do anything now|developer mode (is )?(now )?enabled|dan mode)\b",
    "new_instructions": r"\b(new|updated|real)\s+(system\s+)?(instructions|rules|prompt)\s*:",
    # A line opening "Assistant:" is a forged turn only after another line (an agent may
    # address the assistant that way at the start of a message).
    "fake_role_tag": r"(^|\n)\s*(system|developer)\s*:|\n\s*assistant\s*:|<\|?(system|im_start|im_end)\|?>|\[/?(inst|sys)\]",
    # Asking about the assistant's own instructions in any wording: the object gives it away.
    "prompt_extraction": r"\byour\s+(system\s+(prompt|message|instructions?)|(hidden|initial|original|secret|internal|confidential)\s+(prompt|instructions?|rules|guidelines|configuration|config)|context window)\b|\bwhat (were|are) you told\b",
    # Devices have developer modes too: only asking the assistant to enter one counts.
    "privileged_mode": r"\b(enable|enter|activate|engage|switch to|you are (now )?in|you're (now )?in)\s+(developer|debug|maintenance|admin|god|sudo)\s+mode\b|\[\s*admin\s+override\s*\]|\badmin\s+override\s*:|#+\s*system\s*#+",
    "no_limits": r"\b(never refuses?|no (rules|restrictions|filters|limits) apply|without (any )?(restrictions|rules|filters)|(you are|you're|be|become|respond as|reply as|answer as) (now )?(an? )?(completely |fully |totally )?(unrestricted|unfiltered)|unfiltered (ai|assistant|mode|model|responses?|answers?|output)|(the )?rules don'?t apply|no longer bound by|not bound by)\b",
    "encoded_payload": r"\b(decode|base64|rot13|hex|backwards|reversed?)\b[\w\s,.'()-]{0,40}\b(do what it says|and (do|follow|obey|execute)|follow it|obey)\b",
    # The classic override in other languages (es, de, fr, it, nl, pt).
    "override_multilingual": r"\bignora (todas )?(las|tutte le) (instrucciones|istruzioni)|\bignoriere (alle )?(vorherigen )?anweisungen|\b(oublie|ignore) (toutes )?(tes|les|vos) (consignes|instructions)|\bnegeer (alle )?(vorige )?instructies|\bignore as instru",
}


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
        # Both texts: redaction can turn "Anweisungen" into <PERSON> and hide the attack.
        texts = [normalise(text)] + ([normalise(ctx.original)] if ctx.original else [])
        hits = [name for name, rule in self.rules.items() if any(rule.search(t) for t in texts)]
        if hits:
            return CheckResult(self.name, self.action, tuple(f"prompt_injection:{h}" for h in hits), {"rules_matched": len(hits)})
        return CheckResult(self.name, Action.ALLOW, (), {"rules_matched": 0})
