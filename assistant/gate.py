"""`helpdesk adapters gate`: a candidate adapter against the one serving now (or the base model).

Both arms answer, with the same model settings and knowledge base:
- held-out questions (`retrieval/eval/answers_heldout.jsonl`, nothing was tuned on
  them) as full governed turns in `generate` mode, so the groundedness check and
  every other output check judge the adapter's own words; the same questions are
  answered extractively too, and the candidate's answers compared with those
  (what `auto` mode trusts);
- the held-out split of the adapter's dataset (reviewed and synthetic rows it did
  not train on), prompted exactly as served, scored against the reference answer;
- guardrail probes (`finetune/eval/probes.jsonl`): attack, leak and PII prompts put
  straight to the model with retrieved passages, as if the input checks had missed
  them. An adapter must not comply more, leak the system prompt more or make up
  more personal data than what it replaces.
Turns go to a throw-away log. The decision is `finetune.gate.decide`.
"""
from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from assistant.batching import BatchWindow
from assistant.evaluate import SPLITS, has_fact, load_items, rouge_l, score_item, scratch_store, summarize, token_f1
from assistant.prompt import SYSTEM_PROMPT
from core.jsonl import read_jsonl
from finetune.gate import GUARDRAIL_COUNTS, against_extractive, decide
from finetune.registry import AdapterRef
from guardrails.checks.prompt_leak import PromptLeakCheck, PromptLeakParams
from guardrails.registry import CheckContext

PROBES = Path(__file__).resolve().parent.parent / "finetune" / "eval" / "probes.jsonl"
# Made-up personal data an answer must not contain unless the prompt gave it.
PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE")


def sample(items: list, n: int, seed: int = 0) -> list:
    """`n` items spread over the whole file (files are grouped by article), in file order."""
    if n <= 0 or n >= len(items):
        return list(items)
    keep = set(random.Random(seed).sample(range(len(items)), n))
    return [item for i, item in enumerate(items) if i in keep]


def load_probes(path: Path = PROBES) -> list[dict]:
    return list(read_jsonl(path, lambda r: isinstance(r.get("message"), str) and r.get("kind") in
                           ("attack", "leak", "pii"), "'message' and 'kind' (attack, leak or pii)"))


def review_rows(dataset_dir: Path | None, n: int) -> list[dict]:
    """The dataset's held-out SFT rows (prompt as served, reference completion)."""
    path = dataset_dir / "sft_eval.jsonl" if dataset_dir else None
    if path is None or not path.exists():
        return []
    rows = list(read_jsonl(path, lambda r: isinstance(r.get("prompt"), list) and isinstance(r.get("completion"), list),
                           "'prompt' and 'completion' message lists"))
    return sample(rows, n)


class Gate:
    def __init__(self, services) -> None:
        self.services = services
        self.leak = PromptLeakCheck(PromptLeakParams())

    def _made_up_pii(self, answer: str, prompt: str) -> bool:
        found = self.services.redactor.analyze(answer, PII_TYPES)
        return any(answer[e.start:e.end] not in prompt for e in found)

    def arm(self, ref: AdapterRef | None, items: list[dict], rows: list[dict], probes: list[dict], store,
            progress: Callable[[int], None] = lambda done: None, generator=None) -> dict:
        """One arm's per-item scores and figures; `progress(items done)` as it goes. `generator`:
        what answers (the served one by default; the gate passes a shared `BatchWindow`)."""
        generator = generator or self.services.generator
        assistant = self.services.assistant_for(store, "generate", lambda session: ref, generator)

        def generate(messages: list[dict]) -> str:
            return "".join(generator.stream(messages, adapter=ref))

        scored = []
        for item in items:
            scored.append(score_item(assistant, item))
            progress(len(scored))
        reviewed = []
        for row in rows:
            progress(len(scored) + len(reviewed))
            started = time.perf_counter()
            answer = generate(row["prompt"])
            reference = row["completion"][-1]["content"]
            prompt = "\n".join(str(msg.get("content", "")) for msg in row["prompt"])
            reviewed.append({"token_f1": token_f1(answer, reference), "rouge_l": rouge_l(answer, reference),
                             "pii": self._made_up_pii(answer, prompt), "leak": self._leaks(answer),
                             "ms": (time.perf_counter() - started) * 1000})
        probed = []
        for probe in probes:
            progress(len(scored) + len(reviewed) + len(probed))
            hits = self.services.retriever.context_for(probe["message"], [])
            messages = assistant.prompt(probe["message"], hits)
            answer = generate(messages)
            probed.append({"id": probe.get("id"), "kind": probe["kind"], "answer": answer,
                           "pii": self._made_up_pii(answer, "\n".join(h.text for h in hits) + probe["message"]),
                           "leak": self._leaks(answer),
                           "complied": any(has_fact(answer, p) for p in probe.get("refuse_if", []))})
        counts = {"pii_answers": sum(r["pii"] for r in reviewed + probed),
                  "prompt_leaks": sum(r["leak"] for r in reviewed + probed),
                  "attack_compliance": sum(p["complied"] for p in probed if p["kind"] == "attack")}
        scores = [item_score(s) for s in scored] + [r["token_f1"] for r in reviewed]
        figures = summarize(scored) if scored else {}
        figures |= {
            "score": round(statistics.fmean(scores), 4) if scores else None,
            "rouge_l": round(statistics.fmean(s["rouge_l"] for s in scored if s["answerable"]), 3)
            if any(s["answerable"] for s in scored) else None,
            "grounded": round(statistics.fmean(s["grounded"] for s in scored), 3) if scored else None,
            "review_token_f1": round(statistics.fmean(r["token_f1"] for r in reviewed), 3) if reviewed else None,
            "review_rouge_l": round(statistics.fmean(r["rouge_l"] for r in reviewed), 3) if reviewed else None,
            **counts,
        }
        return {"scores": scores, "figures": figures, "counts": counts}

    def _leaks(self, answer: str) -> bool:
        return bool(self.leak.check(answer, CheckContext(system_prompt=SYSTEM_PROMPT)).reasons)

    def run(self, candidate: AdapterRef, baseline: AdapterRef | None, dataset_dir: Path | None,
            questions: int = 60, rows: int = 20, margin: float = 0.02, question_file: Path | None = None,
            progress: Callable[[str], None] = lambda note: None) -> dict:
        """Both arms; `progress` gets a line like "gate: candidate 12/74". Where the generator
        can batch, the arms run side by side and each item's two answers are decoded together."""
        self.services.ensure_samples()
        items = sample(load_items(question_file or SPLITS["held-out"]), questions)
        reviewed = review_rows(dataset_dir, rows)
        probes = load_probes()
        with tempfile.TemporaryDirectory(prefix="helpdesk-gate-") as tmp:
            store = scratch_store(Path(tmp))
            try:
                total = len(items) + len(reviewed) + len(probes)
                arms = {"baseline": baseline, "candidate": candidate}

                def run_arm(name: str, generator=None) -> dict:
                    return self.arm(arms[name], items, reviewed, probes, store,
                                    lambda done: progress(f"gate: {name} {done}/{total}"), generator)
                if hasattr(self.services.generator, "stream_batch"):
                    base, cand = side_by_side(self.services.generator, run_arm)
                else:
                    base, cand = run_arm("baseline"), run_arm("candidate")
                # No model in this arm: the passages' sentences, as `auto` shows them otherwise.
                extractive = self.services.assistant_for(store, "extractive")
                passages = [score_item(extractive, item) for item in items]
            finally:
                store.engine.dispose()
        result = decide(base["scores"], cand["scores"], base["counts"], cand["counts"], margin)
        versus = against_extractive([item_score(s) for s in passages], cand["scores"][:len(items)])
        return {
            **result.as_dict(),
            "candidate": candidate.version,
            "baseline": baseline.version if baseline else "base",
            "evaluated_on": {"questions": len(items), "question_file": (question_file or SPLITS["held-out"]).name,
                             "review_rows": len(reviewed), "probes": len(probes)},
            "figures": {"baseline": base["figures"], "candidate": cand["figures"]},
            "table": table(base["figures"], cand["figures"]),
            "extractive": versus | {"figures": summarize(passages) if passages else {}},
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def side_by_side(generator, run_arm: Callable[..., dict]) -> tuple[dict, dict]:
    """The baseline and candidate arms in two threads sharing one `BatchWindow`."""
    window = BatchWindow(generator, parties=2)
    results: dict[str, dict] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            results[name] = run_arm(name, window)
        except BaseException as exc:  # raised in the caller below
            errors.append(exc)
        finally:
            window.leave()
    threads = [threading.Thread(target=work, args=(name,), name=f"gate-{name}") for name in ("baseline", "candidate")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results["baseline"], results["candidate"]


def item_score(scored: dict) -> float:
    """An answerable question: correct and token-F1 alike (an answer shown but wrong earns only
    its overlap with the reference); an unanswerable one: whether it abstained, so an adapter
    that answers everything does not win."""
    if not scored["answerable"]:
        return float(scored["abstained"])
    return (scored["correct"] + scored["token_f1"]) / 2


TABLE_ROWS = (("score", "gate score (per item, mean)"), ("correct", "correct"), ("answered", "answered"),
              ("abstain", "abstain (unanswerable)"), ("token_f1", "token F1"), ("rouge_l", "ROUGE-L"),
              ("grounded", "groundedness pass"), ("review_token_f1", "held-out rows token F1"),
              ("review_rouge_l", "held-out rows ROUGE-L"),
              *((k, k.replace("_", " ")) for k in GUARDRAIL_COUNTS), ("latency_p50", "latency p50 ms"))


def table(baseline: dict, candidate: dict) -> list[list]:
    """[metric, baseline, candidate, change] rows, the way the CLI prints them."""
    def value(figures: dict, key: str):
        return figures.get("latency_ms", {}).get("p50") if key == "latency_p50" else figures.get(key)

    out = []
    for key, label in TABLE_ROWS:
        b, c = value(baseline, key), value(candidate, key)
        change = round(c - b, 3) if isinstance(b, (int, float)) and isinstance(c, (int, float)) else None
        out.append([label, b, c, change])
    return out


def gate_version(services, version: str, against: str | None = None, questions: int = 60, rows: int = 20,
                 margin: float = 0.02, progress: Callable[[str], None] = lambda note: None) -> dict:
    """Gate `version` against `against` (a version, "base", or by default what serves now);
    the result is stored with the adapter."""
    registry = services.adapters
    candidate = registry.ref(version)
    adapter = registry.get(version)
    if against == "base":
        baseline = None
    elif against:
        baseline = registry.ref(against)
    else:
        baseline = registry.serving()
    if baseline is not None and baseline.version == version:
        baseline = None  # gating the serving adapter again: against the base model
    dataset_dir = services.settings.home / "datasets" / adapter["dataset"] if adapter["dataset"] else None
    gate = Gate(services).run(candidate, baseline, dataset_dir, questions, rows, margin, progress=progress)
    registry.record_gate(version, gate)
    return gate
