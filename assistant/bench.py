"""Benchmarks: figures printed, never asserted. Medians and p95 from one run, side by side."""
from __future__ import annotations

import logging
import statistics
from typing import Iterable

log = logging.getLogger(__name__)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarise(samples: Iterable[dict[str, float]]) -> dict[str, dict[str, float]]:
    by_stage: dict[str, list[float]] = {}
    for sample in samples:
        for stage, ms in sample.items():
            by_stage.setdefault(stage, []).append(ms)
    return {
        stage: {"p50": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1), "n": len(v)}
        for stage, v in by_stage.items()
    }


def bench_turns(services, questions: list[dict], n: int) -> dict:
    """Run `n` sample questions as full turns; latency per stage and how often the right article is cited."""
    assistant = services.assistant
    assistant.respond(None, "warm-up: how do returns work?")  # first call pays one-off costs
    samples, cited = [], 0
    for q in questions[:n]:
        result = assistant.respond(None, q["question"])
        samples.append(result.latency_ms)
        cited += q["source"] in [h.source for h in result.sources]
        log.info("%s -> %s (%.0f ms)", q["question"][:50], result.action, result.latency_ms["total"])
    return {
        "turns": len(samples),
        "model": services.settings.model.name,
        "device": services.generator.device,
        "max_new_tokens": services.settings.model.max_new_tokens,
        "right_article_in_sources": round(cited / max(1, len(samples)), 3),
        "latency_ms": summarise(samples),
    }


def format_table(report: dict) -> str:
    lines = [f"{report['turns']} turns, model {report['model']} on {report['device']}, "
             f"max_new_tokens {report['max_new_tokens']}, right article cited {report['right_article_in_sources']:.0%}",
             f"{'stage':14} {'p50 ms':>9} {'p95 ms':>9}"]
    for stage, v in report["latency_ms"].items():
        lines.append(f"{stage:14} {v['p50']:9.1f} {v['p95']:9.1f}")
    return "\n".join(lines)
