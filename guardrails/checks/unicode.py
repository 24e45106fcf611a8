"""Invisible and look-alike characters: the tools of hidden instructions and spoofed words.

Invisible format characters (zero-width, bidirectional overrides, tag
characters) are removed from the text the model sees. A word that mixes
scripts (Latin with Cyrillic or Greek: "pаypal" with a Cyrillic a) is flagged.
"""
from __future__ import annotations

import re
import unicodedata
from typing import ClassVar, Literal

from pydantic import Field

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

_WORD = re.compile(r"\w+", re.UNICODE)
_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE")


def _script(ch: str) -> str | None:
    name = unicodedata.name(ch, "")
    return next((s for s in _SCRIPTS if name.startswith(s)), None)


class UnicodeParams(Params):
    action: Literal["flag", "block"] = "flag"
    max_invisible: int = Field(0, ge=0, description="Invisible characters tolerated before acting.")


@register
class UnicodeCheck:
    name: ClassVar[str] = "unicode"
    stages: ClassVar[tuple[str, ...]] = ("input",)
    Params: ClassVar[type[UnicodeParams]] = UnicodeParams

    def __init__(self, params: UnicodeParams) -> None:
        self.action = Action(params.action)
        self.max_invisible = params.max_invisible

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        invisible = sum(1 for ch in text if unicodedata.category(ch) == "Cf")
        cleaned = "".join(ch for ch in text if unicodedata.category(ch) != "Cf") if invisible else text
        mixed = [w for w in _WORD.findall(cleaned) if len({_script(c) for c in w} - {None}) > 1]
        reasons = []
        if invisible > self.max_invisible:
            reasons.append("unicode:invisible")
        if mixed:
            reasons.append("unicode:mixed_script")
        action = self.action if reasons else Action.ALLOW
        return CheckResult(self.name, action, tuple(reasons),
                           {"invisible": invisible, "mixed_script_words": len(mixed)},
                           cleaned if invisible else None)
