"""Reviewers' labels for the guardrail checks, appended to JSONL files in the data directory.

A `false_alarm` decision on a turn an input check stopped says the check was
wrong about that (already redacted) message: it becomes a row with the label
the check should have given, in `<home>/labels/<check>.jsonl`. These files sit
outside the installed package, and start-up never depends on them; only an
explicit retraining reads them.
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


class LabelWriter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, record: dict, decision: dict) -> None:
        rows = false_alarm_rows(record, decision)
        if not rows:
            log.info("false alarm on %s names no labelled check (%s)", record["id"], record["reasons"])
        with _lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stem, row in rows:
                with (self.folder / f"{stem}.jsonl").open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
