"""PII redaction measured on the held-out set of customer-service messages
(`guardrails/eval/pii_heldout.jsonl`, written apart from the recognizers and never tuned on:
this reports figures only, never which messages were missed).

What matters is that no personal value stays in clear, whatever type the
redactor calls it: a gold span is caught when every letter and digit in it
falls inside some redacted span. Clean messages (no gold spans) count as
changed when anything at all is redacted in them.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

HELDOUT = Path(__file__).resolve().parent / "eval" / "pii_heldout.jsonl"


def caught(text: str, start: int, end: int, found: Sequence[tuple[int, int]]) -> bool:
    covered: set[int] = set()
    for s, e in found:
        covered.update(range(max(s, start), min(e, end)))
    return all(i in covered for i in range(start, end) if text[i].isalnum())


def evaluate_pii(analyze: Callable[[str], list], path: Path = HELDOUT, every: int = 1) -> dict:
    """Recall overall and per entity type, and the share of clean messages changed at all
    (on every `every`-th message)."""
    gold: Counter = Counter()
    hit: Counter = Counter()
    clean = changed = 0
    changed_by: Counter = Counter()  # which types changed clean messages (a message may count twice)
    for line in path.read_text(encoding="utf-8").splitlines()[::every]:
        item = json.loads(line)
        text = item["text"]
        entities = analyze(text)
        found = [(e.start, e.end) for e in entities]
        if not item["spans"]:
            clean += 1
            changed += bool(found)
            changed_by.update({e.type for e in entities})
            continue
        for start, end, kind in item["spans"]:
            ok = caught(text, start, end, found)
            gold[kind] += 1
            hit[kind] += ok
    total = sum(gold.values())
    return {
        "file": path.name,
        "recall": round(sum(hit.values()) / total, 4) if total else None,
        "spans": total,
        "per_type": {k: {"recall": round(hit[k] / gold[k], 4), "spans": gold[k]} for k in sorted(gold)},
        "clean_messages": clean,
        "clean_changed": round(changed / clean, 4) if clean else None,
        "clean_changed_by": {k: round(v / clean, 4) for k, v in sorted(changed_by.items())} if clean else {},
    }
