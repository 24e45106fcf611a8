"""Named, frozen verdicts: no positional tuples whose meaning drifts."""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping


class Action(str, Enum):
    """What happens to a message, in rising order of severity."""

    ALLOW = "allow"
    FLAG = "flag"  # shown, but queued for a reviewer
    HANDOFF = "handoff"  # a human takes over: the handoff reply is shown, and the turn is queued
    BLOCK = "block"  # not processed further; a fixed polite reply is shown

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @staticmethod
    def worst(actions: "list[Action] | tuple[Action, ...]") -> "Action":
        return max(actions, key=lambda a: a.severity, default=Action.ALLOW)


_SEVERITY = {Action.ALLOW: 0, Action.FLAG: 1, Action.HANDOFF: 2, Action.BLOCK: 3}


@dataclass(frozen=True)
class CheckResult:
    """One check's finding. `text` is the (possibly rewritten) text the next check sees.

    `replacement` says that `text` is not a rewrite of what was checked but a substitute for
    it (the groundedness fallback): checked piece by piece, such a piece is withheld.
    """

    check: str
    action: Action
    reasons: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict)
    text: str | None = None
    replacement: bool = False


@dataclass(frozen=True)
class Entity:
    """A PII span found in the original text; the value itself is never kept."""

    type: str
    start: int
    end: int
    score: float

    def as_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end, "score": round(self.score, 4)}


@dataclass(frozen=True)
class InputVerdict:
    redacted_text: str
    entities: tuple[Entity, ...]
    action: Action
    reasons: tuple[str, ...]
    scores: Mapping[str, float]

    @property
    def redacted(self) -> bool:
        return bool(self.entities)

    def as_dict(self) -> dict:
        return {
            "action": self.action.value,
            "reasons": list(self.reasons),
            "scores": dict(self.scores),
            "entities": [e.as_dict() for e in self.entities],
        }


@dataclass(frozen=True)
class OutputVerdict:
    text: str
    action: Action
    reasons: tuple[str, ...]
    scores: Mapping[str, float]
    replaced: bool = False  # `text` is a check's substitute for the answer, not the answer

    def as_dict(self) -> dict:
        return {"action": self.action.value, "reasons": list(self.reasons), "scores": dict(self.scores)}


def well_formed(result: object, name: str) -> bool:
    """A check's result is used only if it is exactly what the protocol promises: anything
    else (a tuple, a bare string, an action that is not an `Action`) is a broken check."""
    return (
        isinstance(result, CheckResult)
        and result.check == name
        and isinstance(result.action, Action)
        and isinstance(result.reasons, tuple) and all(isinstance(r, str) for r in result.reasons)
        and isinstance(result.scores, Mapping)
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in result.scores.values())
        and (result.text is None or isinstance(result.text, str))
        and isinstance(result.replacement, bool)
    )


def combine(check_results: list[CheckResult]) -> tuple[Action, tuple[str, ...], dict[str, float]]:
    """Fold check results: the worst action wins; reasons and scores are all kept."""
    action = Action.worst([r.action for r in check_results])
    reasons = tuple(reason for r in check_results for reason in r.reasons)
    scores = {f"{r.check}.{k}": round(float(v), 4) for r in check_results for k, v in r.scores.items()}
    return action, reasons, scores
