"""Name -> check class. Unknown or duplicate names are errors, never a silent pass."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Mapping, Protocol, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from core.errors import ConfigError
from guardrails.verdict import CheckResult

Stage = Literal["input", "output"]


class Params(BaseModel):
    """Base for a check's parameters: unknown parameters are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckContext(BaseModel):
    """What a check may look at besides the text it is given."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)
    redacted_input: str = ""
    # The message before redaction (input stage only), for checks whose signal redaction can
    # destroy (spaCy's English NER tags foreign words as names) or that learned from text as
    # typed. Never stored, never returned.
    original: str = ""
    context_texts: tuple[str, ...] = ()
    system_prompt: str = ""
    # Output stage, checked piece by piece as it streams: the answer's text already released.
    # Checks whose matches can span pieces (a run of the system prompt's words) look back into it.
    prior_text: str = ""


class Check(Protocol):
    name: ClassVar[str]
    stages: ClassVar[tuple[Stage, ...]]
    Params: ClassVar[type[Params]]

    def check(self, text: str, ctx: CheckContext) -> CheckResult: ...

    # Optional: `prefetch(original: str) -> None` starts work that needs only the message
    # as typed (model scores, embeddings), which the guard runs alongside PII detection.


_REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a check available to policies under `cls.name`."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"check {name!r} is registered twice")
    _REGISTRY[name] = cls
    return cls


def registered() -> Mapping[str, type]:
    import guardrails.checks  # noqa: F401  (registers every shipped check)

    return dict(_REGISTRY)


def build_check(name: str, params: Mapping[str, Any] | None, stage: Stage, where: str, deps: Mapping[str, Any]) -> Check:
    """Instantiate a check from policy data; `where` names the file and key for errors."""
    checks = registered()
    if name not in checks:
        raise ConfigError(f"{where}: unknown check {name!r} (known: {', '.join(sorted(checks))})")
    cls = checks[name]
    if stage not in cls.stages:
        raise ConfigError(f"{where}: check {name!r} cannot run on {stage} (only {', '.join(cls.stages)})")
    try:
        parsed = cls.Params.model_validate(params or {})
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'params'}: "
            f"{'unknown parameter' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"{where}.params: {details}") from None
    try:
        return cls(parsed, **{k: v for k, v in deps.items() if k in getattr(cls, "needs", ())})
    except ConfigError:
        raise
    except Exception as exc:  # a check that cannot start must stop start-up
        raise ConfigError(f"{where}: check {name!r} failed to start: {exc}") from exc


def build_checks(specs: Sequence[Mapping[str, Any]], stage: Stage, origin: str, key: str, deps: Mapping[str, Any]) -> list[Check]:
    return [
        build_check(spec["type"], spec.get("params"), stage, f"{origin}: {key}[{i}]", deps)
        for i, spec in enumerate(specs)
    ]

