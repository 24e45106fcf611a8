"""Figures from the exchange log: per adapter (A/B arms), over time (monitoring), and for /metrics.

Everything is computed from the stored exchanges and the current feedback, so the
figures are the same from every process (server, CLI) and survive restarts. Rates
come with a 95% Wilson interval and their counts.
"""
from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from typing import Iterable

from sqlalchemy import Engine, text

from assistant.bench import percentile

BASE = "base"  # how the base model (no adapter) is named in the figures


def wilson(hits: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% interval of a proportion; sound for small counts and rates near 0 or 1."""
    if n == 0:
        return None
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3)]


def rate_text(figure: dict) -> str:
    """A rate as `0.812 [0.74-0.87] n=120`, or "-" when there is nothing to count."""
    ci = figure["ci95"]
    return "-" if figure["rate"] is None else f"{figure['rate']:.3f} [{ci[0]:.2f}-{ci[1]:.2f}] n={figure['n']}"


def turns(engine: Engine, since: str | None = None, until: str | None = None) -> list[dict]:
    """Exchanges in [since, until] (ISO times), each with its current thumbs."""
    where, params = [], {}
    if since:
        where.append("e.created_at >= :since")
        params["since"] = since
    if until:
        where.append("e.created_at <= :until")
        params["until"] = until
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text(
            "SELECT e.id, e.session_id, e.created_at, e.adapter, e.action, e.flagged, e.answer_mode, "
            "e.raw_answer IS NOT NULL AS generated, e.latency_ms FROM exchanges e" + clause), params)]
        ratings: dict[str, list[str]] = defaultdict(list)
        for r in conn.execute(text(
                "SELECT f.exchange_id, f.rating FROM feedback f JOIN exchanges e ON e.id = f.exchange_id"
                " WHERE f.superseded_at IS NULL" + clause.replace(" WHERE", " AND")), params):
            ratings[r.exchange_id].append(r.rating)
    for row in rows:
        row["adapter"] = row["adapter"] or BASE
        row["ratings"] = ratings.get(row["id"], [])
        row["latency_total"] = (json.loads(row.pop("latency_ms") or "{}") or {}).get("total")
    return rows


def summarize(rows: list[dict]) -> dict:
    """One arm's figures: conversations, turns, thumbs-up, flag, answer and groundedness rates, latency."""
    def rate(hits: int, n: int) -> dict:
        return {"rate": round(hits / n, 3) if n else None, "n": n, "ci95": wilson(hits, n)}

    ratings = [r for row in rows for r in row["ratings"]]
    generated = [row for row in rows if row["generated"]]
    latencies = [row["latency_total"] for row in rows if row["latency_total"] is not None]
    return {
        "conversations": len({row["session_id"] for row in rows}),
        "turns": len(rows),
        "thumbs_up": rate(ratings.count("up"), len(ratings)),
        "flag_rate": rate(sum(bool(row["flagged"]) for row in rows), len(rows)),
        "answer_rate": rate(sum(row["answer_mode"] is not None for row in rows), len(rows)),
        # Of the turns where the model answered, the share shown whole (every sentence grounded).
        "groundedness": rate(sum(row["answer_mode"] == "generate" for row in generated), len(generated)),
        "latency_ms": {"p50": round(statistics.median(latencies), 1) if latencies else None,
                       "p95": round(percentile(latencies, 0.95), 1) if latencies else None},
    }


def by_adapter(rows: Iterable[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row["adapter"]].append(row)
    return {adapter: summarize(group) for adapter, group in sorted(groups.items())}


def over_time(rows: Iterable[dict], bucket: str = "day") -> list[dict]:
    """Per adapter and per day (or hour): the figures monitoring plots."""
    width = {"day": 10, "hour": 13}[bucket]
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["created_at"][:width], row["adapter"])].append(row)
    out = []
    for (period, adapter), group in sorted(groups.items()):
        s = summarize(group)
        out.append({"period": period, "adapter": adapter, "turns": s["turns"],
                    "answer_rate": s["answer_rate"]["rate"], "flag_rate": s["flag_rate"]["rate"],
                    "thumbs_up": s["thumbs_up"]["rate"], "latency_p50_ms": s["latency_ms"]["p50"]})
    return out


def ab_status(services) -> dict | None:
    """The running (or last) A/B test with each arm's figures, side by side."""
    test = services.ab.latest()
    if test is None:
        return None
    rows = turns(services.engine, test["started_at"], test["stopped_at"])
    arms = {"candidate": [r for r in rows if r["adapter"] == test["candidate"]],
            "baseline": [r for r in rows if r["adapter"] != test["candidate"]]}
    return {"test": test, "running": test["stopped_at"] is None,
            "arms": {name: {"adapter": test["candidate"] if name == "candidate" else test["baseline"] or "base",
                            **summarize(group)} for name, group in arms.items()}}


def prometheus(engine: Engine, serving: str | None, queue: dict[str, int]) -> str:
    """The Prometheus text format: totals per adapter since the log began (aggregated in the
    database, so a scrape stays cheap on a long log), the recent latency, what serves, and
    the review queue."""
    lines = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        for labels, value in samples:
            label = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{label}}} {value}" if label else f"{name} {value}")

    with engine.connect() as conn:
        counts = conn.execute(text(
            "SELECT COALESCE(adapter, :base) AS adapter, action, COUNT(*) AS n, "
            "SUM(CASE WHEN answer_mode IS NOT NULL THEN 1 ELSE 0 END) AS answered "
            "FROM exchanges GROUP BY COALESCE(adapter, :base), action"), {"base": BASE}).all()
        thumbs = conn.execute(text(
            "SELECT COALESCE(e.adapter, :base) AS adapter, f.rating, COUNT(*) AS n FROM feedback f "
            "JOIN exchanges e ON e.id = f.exchange_id WHERE f.superseded_at IS NULL "
            "GROUP BY COALESCE(e.adapter, :base), f.rating"), {"base": BASE}).all()
        recent = [json.loads(r.latency_ms or "{}").get("total") for r in conn.execute(text(
            "SELECT latency_ms FROM exchanges ORDER BY created_at DESC LIMIT 1000"))]
    answered: dict[str, int] = defaultdict(int)
    for row in counts:
        answered[row.adapter] += int(row.answered or 0)
    recent = [ms for ms in recent if ms is not None]
    metric("helpdesk_turns_total", "counter", "Chat turns logged, by adapter and action.",
           [({"adapter": r.adapter, "action": r.action}, r.n) for r in sorted(counts)])
    metric("helpdesk_answered_total", "counter", "Turns that got a real answer, by adapter.",
           [({"adapter": a}, n) for a, n in sorted(answered.items())])
    metric("helpdesk_feedback_total", "counter", "Current thumbs on answers, by adapter and rating.",
           [({"adapter": r.adapter, "rating": r.rating}, r.n) for r in sorted(thumbs)])
    metric("helpdesk_turn_latency_ms", "gauge", "Turn latency over the last 1000 turns, by quantile.",
           [({"quantile": str(q)}, round(percentile(recent, q), 1)) for q in (0.5, 0.95)] if recent else [])
    metric("helpdesk_adapter_serving", "gauge", "The adapter serving (1), the base model when none is promoted.",
           [({"adapter": serving or BASE}, 1)])
    metric("helpdesk_review_queue", "gauge", "Review queue items by status.",
           [({"status": s}, n) for s, n in sorted(queue.items())])
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
