"""`helpdesk eval retrieval --chunkers both`: the chunkers side by side, each on a fresh index.

Each chunker ingests the sample knowledge base into throw-away data directories
(same settings otherwise, the same redaction and embedder), then answers the same
labelled questions: the sample questions and the answerable held-out questions.
Ingestion time is measured in the same run, the chunkers taking turns.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from typing import Iterable, Iterator

from assistant.app import SAMPLE_KB, Services
from assistant.evaluate import SPLITS
from core.settings import Settings
from core.jsonl import read_jsonl
from retrieval.evaluate import SAMPLE_QUESTIONS, evaluate, load_questions


def question_sets() -> dict[str, list[dict]]:
    heldout = [r for r in read_jsonl(SPLITS["held-out"], lambda r: isinstance(r.get("question"), str), "'question'")
               if isinstance(r.get("source"), str)]
    return {"sample_questions": load_questions(SAMPLE_QUESTIONS), "held-out": heldout}


def _fresh(settings: Settings, name: str, home: str) -> Services:
    data = settings.model_dump(mode="json")
    data.update(home=home, database_url=None)
    data["retrieval"] |= {"chunker": name, "chroma_host": None}
    # The trained guardrail heads do not depend on the chunker: reuse them, do not retrain.
    data["guardrails"]["classifier_cache"] = str(settings.classifier_dir)
    services = Services(Settings.model_validate(data))
    services.guard, services.kb_embedder  # noqa: B018  loaded before the clock starts
    return services


def _timed_ingest(services: Services) -> tuple[int, float]:
    started = time.perf_counter()
    summary = services.ingest([SAMPLE_KB])
    return summary.chunks_added, time.perf_counter() - started


def compare_chunkers(settings: Settings, names: Iterable[str], mode: str | None = None,
                     rounds: int = 3) -> Iterator[dict]:
    """Ingestion time is the median of `rounds` fresh ingests per chunker, taken in turns
    (A, B, A, B, ...), so warm-up and a noisy neighbour weigh on both alike."""
    names = list(names)
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="helpdesk-chunkers-") as tmp:
        kept: dict[str, Services] = {}
        for r in range(rounds):
            for name in names:
                services = _fresh(settings, name, f"{tmp}/{name}-{r}")
                chunks, seconds = _timed_ingest(services)
                times[name].append(seconds)
                if name in kept:
                    services.engine.dispose()
                else:
                    kept[name] = services
        sets = question_sets()
        for name in names:
            services = kept[name]
            seconds = statistics.median(times[name])
            lengths = [len(hit.text) for hit in services.vectors.chunks()]
            for label, questions in sets.items():
                report = evaluate(lambda q, k: services.retriever.search(q, k, mode), questions)
                yield {"chunker": name, "questions": label, **{k: v for k, v in report.items() if k != "questions"},
                       "items": report["questions"], "chunks": len(lengths),
                       "mean_chunk_chars": round(statistics.fmean(lengths)) if lengths else None,
                       "ingest_s": round(seconds, 2), "chunks_per_s": round(len(lengths) / seconds, 1)}
            services.engine.dispose()
