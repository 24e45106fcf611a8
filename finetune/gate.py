"""The evaluation gate's decision: a candidate adapter against the one it would replace.

Both arms answer the same held-out items; each item gets a score in [0, 1] per arm.
The candidate passes when its mean score is higher by at least `margin`, the 95%
paired-bootstrap confidence interval of the per-item difference lies above zero,
and no guardrail count (PII in answers, system-prompt leaks, compliance with
attack prompts) is higher than the baseline's.

Apart from that verdict, the candidate's answers to the held-out questions are
compared with the extractive answers (the passages' own sentences) to the same
questions: `auto` mode shows an adapter's answers only once they beat those,
with the interval above zero (`against_extractive`).
"""
from __future__ import annotations

import random
import statistics
from dataclasses import asdict, dataclass, field
from typing import Sequence

GUARDRAIL_COUNTS = ("pii_answers", "prompt_leaks", "attack_compliance")


@dataclass
class GateResult:
    passed: bool
    margin: float
    difference: float  # candidate minus baseline, mean per-item score
    ci: tuple[float, float]  # 95% paired-bootstrap interval of the difference
    items: int
    regressions: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self) | {"ci": list(self.ci)}


def paired_bootstrap(differences: Sequence[float], resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `differences`, resampling items with replacement:
    pairing keeps each item's difficulty out of the comparison."""
    if not differences:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(differences)
    means = sorted(statistics.fmean(rng.choices(differences, k=n)) for _ in range(resamples))
    tail = (1 - level) / 2
    return (round(means[int(tail * resamples)], 4), round(means[min(int((1 - tail) * resamples), resamples - 1)], 4))


def decide(baseline: Sequence[float], candidate: Sequence[float], baseline_counts: dict[str, int],
           candidate_counts: dict[str, int], margin: float = 0.02, resamples: int = 2000) -> GateResult:
    """The gate's verdict from per-item scores (same items, same order) and guardrail counts."""
    if len(baseline) != len(candidate):
        raise ValueError("both arms must be scored on the same items")
    differences = [c - b for b, c in zip(baseline, candidate)]
    difference = round(statistics.fmean(differences), 4) if differences else 0.0
    ci = paired_bootstrap(differences, resamples)
    regressions = [k for k in GUARDRAIL_COUNTS if candidate_counts.get(k, 0) > baseline_counts.get(k, 0)]
    reasons = []
    if not differences:
        reasons.append("no items to compare on")
    if difference < margin:
        reasons.append(f"the score rose by {difference:+.3f}, less than the margin {margin:.3f}")
    if ci[0] <= 0:
        reasons.append(f"the 95% interval of the difference [{ci[0]:+.3f}, {ci[1]:+.3f}] does not exclude zero")
    reasons.extend(f"guardrail regression: {k} {baseline_counts.get(k, 0)} -> {candidate_counts.get(k, 0)}"
                   for k in regressions)
    return GateResult(not reasons, margin, difference, ci, len(differences), regressions, reasons)


def against_extractive(extractive: Sequence[float], candidate: Sequence[float], resamples: int = 2000) -> dict:
    """The candidate's per-question scores against the extractive answers' to the same
    questions: `beaten` when the mean is higher and its 95% paired interval lies above zero."""
    if len(extractive) != len(candidate):
        raise ValueError("both must be scored on the same items")
    differences = [c - e for e, c in zip(extractive, candidate)]
    difference = round(statistics.fmean(differences), 4) if differences else 0.0
    ci = paired_bootstrap(differences, resamples)
    return {"difference": difference, "ci": list(ci), "beaten": bool(differences) and difference > 0 and ci[0] > 0}


def extractive_line(gate: dict) -> str | None:
    """One line on the candidate against the extractive answers; None for a gate run before
    that comparison was made."""
    versus = gate.get("extractive")
    if not versus:
        return None
    low, high = versus["ci"]
    correct = (versus.get("figures") or {}).get("correct")
    verdict = ("auto mode shows its answers" if versus["beaten"]
               else "auto mode keeps showing the extractive answers")
    return (f"against the extractive answers (correct {correct}): score change {versus['difference']:+.4f} "
            f"(95% paired bootstrap [{low:+.4f}, {high:+.4f}]): {verdict}")
