"""Reviewers' labels for the guardrail checks, appended to JSONL files in the data directory.

A `false_alarm` decision on a turn an input check stopped says the check was
wrong about that (already redacted) message: it becomes a row with the label
the check should have given, in `<home>/labels/<check>.jsonl`. A decision can
also carry an explicit label, `check:label` (e.g. `injection:attack` for an
attack that got through). These files sit outside the installed package, and
start-up never depends on them; only `helpdesk train ... --with-labels` reads
them.
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

log = logging.getLogger(__name__)
_lock = threading.Lock()

# Reason prefix of an input check -> (label file, the label a false alarm means).
FALSE_ALARM_LABELS = {
    "prompt_injection": ("injection", "benign"),
    "sentiment": ("sentiment", "neutral"),
    "banned_topic": ("banned_topics", "allowed"),
    "toxicity": ("toxicity", "clean"),
}


# The labels each file may hold (what its check's training reads).
LABELS = {
    "injection": ("attack", "benign"),
    "sentiment": ("neutral", "angry", "distressed", "human_request"),
    "toxicity": ("toxic", "clean"),
}


def parse_label(label: str) -> tuple[str, str]:
    """`check:label` -> (file stem, label); ValueError when either is unknown."""
    stem, _, value = label.partition(":")
    if stem not in LABELS or value not in LABELS[stem]:
        known = ", ".join(f"{s}:{v}" for s, values in LABELS.items() for v in values)
        raise ValueError(f"unknown label {label!r}; known: {known}")
    return stem, value


def false_alarm_rows(record: dict, decision: dict) -> list[tuple[str, dict]]:
    """(file stem, row) for each check that stopped this turn's message."""
    out = []
    for reason in record["reasons"]:
        prefix = reason.split(":", 1)[0]
        if prefix in FALSE_ALARM_LABELS:
            stem, label = FALSE_ALARM_LABELS[prefix]
            out.append((stem, {"text": record["redacted_input"], "label": label, "check_reason": reason,
                               "exchange_id": record["id"], "by": decision["by"], "at": decision["at"]}))
    return out


def read_labels(folder: Path, stem: str) -> list[dict]:
    """The `{"text", "label"}` rows reviewers wrote for one check (empty if none yet)."""
    path = folder / f"{stem}.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row.get("label") in LABELS.get(stem, ()) and isinstance(row.get("text"), str):
                rows.append({"text": row["text"], "label": row["label"]})
    return rows


class LabelWriter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, record: dict, decision: dict) -> None:
        rows = false_alarm_rows(record, decision) if decision["decision"] == "false_alarm" else []
        if decision.get("label"):
            stem, value = parse_label(decision["label"])
            rows.append((stem, {"text": record["redacted_input"], "label": value, "check_reason": None,
                                "exchange_id": record["id"], "by": decision["by"], "at": decision["at"]}))
        if not rows:
            log.info("decision on %s names no labelled check (%s)", record["id"], record["reasons"])
        with _lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stem, row in rows:
                with (self.folder / f"{stem}.jsonl").open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
