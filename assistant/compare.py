"""`helpdesk eval retrieval --chunkers both`: the chunkers side by side, each on a fresh index.

Each chunker ingests the sample knowledge base into a throw-away data directory
(same settings otherwise, the same redaction and embedder), then answers the same
labelled questions: the sample questions and the answerable held-out questions.
Ingestion time is measured in the same run, one chunker after the other.
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


def compare_chunkers(settings: Settings, names: Iterable[str], mode: str | None = None) -> Iterator[dict]:
    sets = question_sets()
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"helpdesk-chunker-{name}-") as tmp:
            data = settings.model_dump(mode="json")
            data.update(home=tmp, database_url=None)
            data["retrieval"] |= {"chunker": name, "chroma_host": None}
            # The trained guardrail heads do not depend on the chunker: reuse them, do not retrain.
            data["guardrails"]["classifier_cache"] = str(settings.classifier_dir)
            services = Services(Settings.model_validate(data))
            services.guard, services.kb_embedder  # noqa: B018  loaded before the clock starts
            started = time.perf_counter()
            summary = services.ingest([SAMPLE_KB])
            seconds = time.perf_counter() - started
            lengths = [len(hit.text) for hit in services.vectors.chunks()]
            for label, questions in sets.items():
                report = evaluate(lambda q, k: services.retriever.search(q, k, mode), questions)
                yield {"chunker": name, "questions": label, **{k: v for k, v in report.items() if k != "questions"},
                       "items": report["questions"], "chunks": summary.chunks_added,
                       "mean_chunk_chars": round(statistics.fmean(lengths)) if lengths else None,
                       "ingest_s": round(seconds, 1), "chunks_per_s": round(summary.chunks_added / seconds, 1)}
            services.engine.dispose()
