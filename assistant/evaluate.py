"""`helpdesk eval answers`: the full governed turn on labelled questions, per answer mode.

A question file is JSONL. Each line is one of:
- an answerable question: {"id", "question", "source", "answer", "facts"};
- an unanswerable one: {"id", "question", "source": null, "answerable": false};
- a two-turn item: an answerable question with "followup": {"question", "source",
  "answer", "facts"}, asked next in the same conversation.
`facts` are what a right answer must contain: plain strings (case-insensitive) or
regular expressions written "re:...".

Turns are logged to a throw-away store, never to the exchange log.
"""
from __future__ import annotations

import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterable

from assistant.database import open_database
from assistant.bench import percentile
from core.errors import BadInput
from core.jsonl import read_jsonl
from assistant.service import Assistant, TurnResult
from assistant.store import Store
from retrieval.evaluate import has_fact  # noqa: F401  (callers import it from here too)
from retrieval.search import tokenize

EVAL_DIR = Path(__file__).resolve().parent.parent / "retrieval" / "eval"
# The shipped splits: dev is what answer settings are tuned on; held-out is not tuned on.
SPLITS = {"dev": EVAL_DIR / "answers_dev.jsonl", "held-out": EVAL_DIR / "answers_heldout.jsonl"}
MODES = ("generate", "extractive", "auto")
_HEDGE = re.compile(r"don'?t know|do not know|couldn'?t find|could not find|not sure|no information", re.I)
_OFFER = re.compile(r"human|colleague|person", re.I)


def load_items(path: Path) -> list[dict]:
    def valid(r: dict) -> bool:
        if not isinstance(r.get("question"), str):
            return False
        if r.get("answerable", True) is False:
            return True
        followup = r.get("followup")
        return isinstance(r.get("facts"), list) and isinstance(r.get("source"), str) and (
            followup is None or (isinstance(followup, dict) and isinstance(followup.get("question"), str)
                                 and isinstance(followup.get("facts"), list)))

    return list(read_jsonl(path, valid, "'question', and 'source' and 'facts' unless 'answerable' is false"))


def token_f1(answer: str, reference: str) -> float:
    got, want = Counter(tokenize(answer)), Counter(tokenize(reference))
    common = sum((got & want).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def answered(result: TurnResult) -> bool:
    """A real answer: not a fixed reply (block, handoff, nothing found) nor a fallback."""
    return result.answer_mode is not None and result.action not in ("block", "handoff") and not abstained(result)


def abstained(result: TurnResult) -> bool:
    """Said it does not know and offered a human."""
    if result.action == "block":
        return False
    if result.answer_mode is None:
        return result.action != "handoff" and bool(_OFFER.search(result.answer))
    return bool(_HEDGE.search(result.answer) and _OFFER.search(result.answer))


def correct(result: TurnResult, facts: list[str]) -> bool:
    return answered(result) and bool(facts) and all(has_fact(result.answer, f) for f in facts)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common subsequence of tokens, as precision and recall."""
    a, b = tokenize(answer), tokenize(reference)
    if not a or not b:
        return 0.0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(b)
    return 2 * precision * recall / (precision + recall)


def score_item(assistant: Assistant, item: dict) -> dict:
    """One labelled question through the full turn: what the figures are made of, per item."""

    def turn(question: str, session: str | None = None) -> tuple[TurnResult, float]:
        started = time.perf_counter()
        result = assistant.respond(session, question)
        return result, (time.perf_counter() - started) * 1000

    result, latency = turn(item["question"])
    scored = {"id": item.get("id"), "latency_ms": [latency], "answer": result.answer,
              "grounded": result.answer_mode == "generate"}
    if item.get("answerable", True) is False:
        return scored | {"answerable": False, "abstained": abstained(result)}
    sources = [h.source for h in result.sources]
    reference = item.get("answer") or ""
    scored |= {"answerable": True, "answered": answered(result), "correct": correct(result, item["facts"]),
               "cited_first": bool(sources) and sources[0] == item["source"], "cited_any": item["source"] in sources,
               "token_f1": token_f1(result.answer, reference) if answered(result) else 0.0,
               "rouge_l": rouge_l(result.answer, reference) if answered(result) else 0.0}
    if item.get("followup"):
        second, latency = turn(item["followup"]["question"], result.session_id)
        scored["latency_ms"].append(latency)
        scored["followup_correct"] = correct(second, item["followup"]["facts"])
    return scored


def summarize(scored: list[dict]) -> dict:
    """The figures from per-item scores."""
    answerable = [s for s in scored if s["answerable"]]
    unanswerable = [s for s in scored if not s["answerable"]]
    followups = [s for s in answerable if "followup_correct" in s]
    latencies = [ms for s in scored for ms in s["latency_ms"]]

    def share(key: str, of: list[dict]) -> float | None:
        return round(sum(bool(s[key]) for s in of) / len(of), 3) if of else None

    return {
        "answered": share("answered", answerable),
        "correct": share("correct", answerable),
        "token_f1": round(statistics.fmean(s["token_f1"] for s in answerable), 3) if answerable else None,
        "cited": {"first": share("cited_first", answerable), "any": share("cited_any", answerable)},
        "abstain": share("abstained", unanswerable),
        "followup_correct": share("followup_correct", followups),
        "latency_ms": {"p50": round(statistics.median(latencies), 1) if latencies else None,
                       "p95": round(percentile(latencies, 0.95), 1) if latencies else None},
    }


def evaluate(assistant: Assistant, items: list[dict], limit: int | None = None) -> dict:
    """The figures for one answer mode on one question file."""
    items = items[:limit] if limit else items
    return summarize([score_item(assistant, item) for item in items])


def scratch_store(folder: Path) -> Store:
    """A throw-away exchange log: evaluation turns never reach the real one."""
    return Store(open_database(f"sqlite:///{folder / 'eval.db'}"))


def eval_answers(services, files: dict[str, Path], modes: Iterable[str], limit: int | None = None) -> Iterable[dict]:
    """One report per (question file, mode), the modes side by side on the same knowledge base."""
    modes = list(modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise BadInput(f"--mode: unknown {', '.join(unknown)} ({', '.join(MODES)})")
    services.ensure_samples()
    loaded = {name: load_items(path) for name, path in files.items()}
    with tempfile.TemporaryDirectory(prefix="helpdesk-eval-") as tmp:
        store = scratch_store(Path(tmp))
        for name, items in loaded.items():
            for mode in modes:
                assistant = services.assistant_for(store, mode)
                report = evaluate(assistant, items, limit)
                yield {"mode": mode, "questions": {"file": name, "items": min(len(items), limit or len(items))},
                       **report}
        store.engine.dispose()
