"""The policy file: which checks run, in what order, with what parameters; PII settings.

The policy is data a compliance officer can read and change. It is validated
strictly: a malformed file, an empty policy, an unknown key or check name
stops start-up with a message that names the file and the key.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError

DEFAULT_POLICY = Path(__file__).with_name("policy.yaml")
PiiAction = Literal["redact", "flag", "block"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PatternSpec(_Strict):
    name: str
    regex: str
    score: float = Field(ge=0.0, le=1.0)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        # Presidio compiles patterns only when it first analyzes: a bad one must stop start-up,
        # not block every message later.
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class RecognizerSpec(_Strict):
    """A custom recognizer in Presidio's own terms: patterns, context words, deny list."""

    entity: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    name: str | None = None
    patterns: list[PatternSpec] = []
    context: list[str] = []
    deny_list: list[str] = []

    @model_validator(mode="after")
    def _finds_something(self) -> "RecognizerSpec":
        if not self.patterns and not self.deny_list:
            raise ValueError("a recognizer needs patterns or a deny_list")
        return self


class PiiPolicy(_Strict):
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    entities: dict[str, PiiAction] = Field(min_length=1, description="Entity -> redact | flag | block.")
    recognizers: list[RecognizerSpec] = []
    allow_list: list[str] = Field([], description="Words never redacted: the company's own names and products.")


class CheckSpec(_Strict):
    type: str
    params: dict[str, Any] = {}


class Policy(_Strict):
    version: str = "1"
    block_message: str = (
        "I'm sorry, I can't help with that request. "
        "If you need more help, I can pass this conversation to a colleague."
    )
    handoff_message: str = (
        "I'm passing this conversation to a human colleague, who will pick it up shortly."
    )
    check_timeout_ms: int = Field(2000, ge=10, le=120_000, description="A check slower than this blocks.")
    pii: PiiPolicy
    input_checks: list[CheckSpec] = Field(min_length=1)
    output_checks: list[CheckSpec] = Field(min_length=1)


def load_policy(path: str | Path | None = None) -> tuple[Policy, str]:
    """Read and validate a policy; returns it with the path it came from (for messages)."""
    policy_path = Path(path) if path else DEFAULT_POLICY
    origin = str(policy_path)
    try:
        raw = yaml.safe_load(policy_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"policy file not found: {policy_path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from None
    if not raw:
        raise ConfigError(f"{origin}: the policy is empty; an empty policy would let everything through")
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: the top level must be a mapping")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{origin}: {details}") from None
    return policy, origin
