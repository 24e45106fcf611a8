"""Retrieval evaluation: does a question find the document that answers it?

Questions are JSONL lines {"question", "source"} where source is the file name.
A document's rank is the rank of its best chunk among the hits.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.jsonl import read_jsonl

SAMPLE_QUESTIONS = Path(__file__).with_name("sample_questions.jsonl")


def load_questions(path: Path) -> list[dict]:
    return list(read_jsonl(
        path, lambda r: isinstance(r.get("question"), str) and isinstance(r.get("source"), str),
        "string fields 'question' and 'source'",
    ))


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


def has_fact(answer: str, fact: str) -> bool:
    """A key fact of a labelled question: a plain string (case-insensitive) or "re:REGEX"."""
    if fact.startswith("re:"):
        return re.search(fact[3:], answer, re.IGNORECASE) is not None
    return fact.lower() in answer.lower()
