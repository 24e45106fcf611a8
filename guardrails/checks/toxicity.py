"""Abuse and toxicity by lexicon: insults, slurs-free profanity, threats.

No toxicity classifier weights are available offline; a curated lexicon with
whole-word matching is transparent and fast. Customers do swear when upset,
so the default is to flag (a reviewer sees it), not to block.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from guardrails.text import normalise
from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

DEFAULT_LEXICON: dict[str, list[str]] = {
    # Mild words ("damn", "crap", "bloody hell") are left out: customers use them of a lost
    # Allen key or their own typo, and flagging them only buries the reviewers' queue.
    "profanity": ["fuck", "fucking", "fucked", "shit", "shitty", "bullshit", "bastard", "asshole", "wtf", "piss off"],
    "insult": ["idiot", "idiots", "moron", "morons", "stupid", "useless", "incompetent", "imbecile", "pathetic",
               "clown", "clowns", "scammers", "scam artists", "thieves", "liars", "dumb"],
    "threat": ["i will kill", "i'll kill", "burn down", "hurt you", "find where you live", "you'll regret",
               "destroy you", "come after you"],
}


class ToxicityParams(Params):
    action: Literal["flag", "block"] = "flag"
    block_threats: bool = True
    lexicon: dict[str, list[str]] = DEFAULT_LEXICON


@register
class ToxicityCheck:
    name: ClassVar[str] = "toxicity"
    stages: ClassVar[tuple[str, ...]] = ("input", "output")
    Params: ClassVar[type[ToxicityParams]] = ToxicityParams

    def __init__(self, params: ToxicityParams) -> None:
        self.action = Action(params.action)
        self.block_threats = params.block_threats
        self.rules = {
            kind: re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b")
            for kind, words in params.lexicon.items() if words
        }

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        norm = normalise(text)
        hits = {kind: len(rule.findall(norm)) for kind, rule in self.rules.items()}
        kinds = [k for k, n in hits.items() if n]
        if not kinds:
            return CheckResult(self.name, Action.ALLOW, (), {"matches": 0})
        action = Action.BLOCK if self.block_threats and "threat" in kinds else self.action
        return CheckResult(self.name, action, tuple(f"toxicity:{k}" for k in kinds), {"matches": sum(hits.values())})
