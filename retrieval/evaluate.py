"""Retrieval evaluation: does a question find the document that answers it?

Questions are JSONL lines {"question", "source"} where source is the file name.
A document's rank is the rank of its best chunk among the hits.
"""
from __future__ import annotations

import json
from pathlib import Path

from assistant.errors import BadInput

SAMPLE_QUESTIONS = Path(__file__).with_name("sample_questions.jsonl")


def load_questions(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read questions from {path}: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BadInput(f"{path}:{n}: not JSON: {exc.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not isinstance(row.get("source"), str):
            raise BadInput(f"{path}:{n}: needs string fields 'question' and 'source'")
        rows.append(row)
    if not rows:
        raise BadInput(f"{path}: no questions")
    return rows


def evaluate(search, questions: list[dict], depth: int = 10) -> dict:
    """`search(text, k)` returns hits best first; returns hit@1, hit@5 and MRR over documents."""
    hit1 = hit5 = 0
    reciprocal = 0.0
    for q in questions:
        ranked: list[str] = []
        for hit in search(q["question"], depth):
            if hit.source not in ranked:
                ranked.append(hit.source)
        if q["source"] in ranked:
            rank = ranked.index(q["source"]) + 1
            hit1 += rank == 1
            hit5 += rank <= 5
            reciprocal += 1.0 / rank
    n = len(questions)
    return {"questions": n, "hit@1": round(hit1 / n, 4), "hit@5": round(hit5 / n, 4), "mrr": round(reciprocal / n, 4)}
