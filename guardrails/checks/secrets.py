"""Secrets pasted into a chat (API keys, tokens, passwords) are masked before anything stores them."""
from __future__ import annotations

import re
from typing import ClassVar, Literal

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult

# Well-known shapes first; the last two catch "password: ..." style disclosures.
DEFAULT_PATTERNS: dict[str, str] = {
    "aws_access_key": r"\b(AKIA|ASIA)[0-9A-Z]{16}\b",
    "github_token": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    "slack_token": r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b",
    "stripe_key": r"\b[sr]k_(live|test)_[A-Za-z0-9]{16,}\b",
    "google_api_key": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "openai_key": r"\bsk-(proj-)?[A-Za-z0-9_-]{20,}\b",
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b",
    "private_key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
    "password": r"(?i)\b(pass(word|wd|code)?|pwd|pin)\s*(is|:|=)\s*\S{4,}",
    "credential_assignment": r"(?i)\b(api[_-]?key|secret|token|access[_-]?key)\s*[:=]\s*['\"]?[A-Za-z0-9_\-/+=.]{12,}",
}


class SecretsParams(Params):
    action: Literal["flag", "block"] = "flag"
    extra_patterns: dict[str, str] = {}


@register
class SecretsCheck:
    name: ClassVar[str] = "secrets"
    stages: ClassVar[tuple[str, ...]] = ("input", "output")
    Params: ClassVar[type[SecretsParams]] = SecretsParams

    def __init__(self, params: SecretsParams) -> None:
        self.action = Action(params.action)
        try:
            self.patterns = {n: re.compile(p) for n, p in {**DEFAULT_PATTERNS, **params.extra_patterns}.items()}
        except re.error as exc:
            raise ValueError(f"extra_patterns: not a valid regular expression: {exc}") from exc

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        found: list[str] = []
        for name, pattern in self.patterns.items():
            text, count = pattern.subn("<SECRET>", text)
            if count:
                found.append(name)
        if not found:
            return CheckResult(self.name, Action.ALLOW, (), {"secrets": 0})
        return CheckResult(self.name, self.action, tuple(f"secret:{n}" for n in found), {"secrets": len(found)}, text)
