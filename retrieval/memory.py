"""Labelled questions: which article answers each one, or that none does.

Agents ask the same things again and again, each in their own words. A question
close to one already labelled (cosine of their embeddings at or above
`min_similarity`) is taken the way that one was: its article's passages are
listed first, and the question is answered from them even where its best
sentence scores under the support bar; or, when the label says the articles do
not cover it, the assistant says it does not know without guessing from a
passage that only sounds near ("a student discount" beside "a military
address"). Follow-ups are left to the conversation: "and if it's a gift?" alone
is close to many questions and means none of them.

A label that says the articles do not cover a question was true of the
documents it was written against: it counts only while the knowledge base
holds no other document (one ingested later may answer it). Which documents
those are is read from the file itself: the sources its answerable questions
name.

The file is JSONL, in the evaluation's question format (`{"question", "source"}`,
or `"source": null` with `"answerable": false`); the sample knowledge base
ships with the labelled questions its sentence ranker was trained on. Vectors
are cached beside the trained classifiers, keyed by the file's contents.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from core.errors import BadInput, ConfigError
from core.jsonl import read_jsonl

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
# The sample knowledge base's labelled questions (the sentence ranker's training questions).
SAMPLE = (DATA / "answers_train.jsonl", DATA / "answers_train_b.jsonl")


@dataclass(frozen=True)
class Recalled:
    question: str  # the labelled question it is close to
    source: str | None  # the document that answers it; None: the articles do not
    similarity: float


@dataclass(frozen=True)
class Label:
    question: str
    source: str | None


def read_labels(paths: Sequence[Path]) -> list[Label]:
    def valid(r: dict) -> bool:
        return isinstance(r.get("question"), str) and (
            isinstance(r.get("source"), str) or (r.get("source") is None and r.get("answerable") is False))

    return [Label(r["question"], r.get("source")) for path in paths
            for r in read_jsonl(path, valid, "'question', and 'source' unless 'answerable' is false")]


class QuestionMemory:
    def __init__(self, labels: Sequence[Label], vectors: np.ndarray, embed: Callable[[list[str]], list],
                 min_similarity: float = 0.7) -> None:
        self.labels = list(labels)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.embed = embed
        self.min_similarity = min_similarity
        # The documents its "not covered" labels were written against.
        self.documents = frozenset(label.source for label in self.labels if label.source)

    def recall(self, question: str, documents: Iterable[str] | None) -> Recalled | None:
        """The closest labelled question, if close enough; a "not covered" one only while the
        knowledge base (`documents`, its sources now; None: unknown) holds no document the labels
        never named."""
        if not self.labels:
            return None
        vector = np.asarray(self.embed([question])[0], dtype=np.float32)
        sims = self.vectors @ vector
        stale = documents is None or not set(documents) <= self.documents
        for i in np.argsort(-sims):
            if sims[i] < self.min_similarity:
                return None
            label = self.labels[int(i)]
            if label.source is None and stale:
                continue  # a later document may answer it: the next closest label decides
            return Recalled(label.question, label.source, round(float(sims[i]), 4))
        return None


def load_memory(setting: str, embedder, cache_dir: Path | None, min_similarity: float) -> QuestionMemory | None:
    """`retrieval.question_memory`: "sample" (the shipped labels about the sample knowledge base),
    paths to JSONL files (comma-separated), or "none". A file that is missing or malformed stops
    start-up rather than serving without the memory that was asked for."""
    if setting.strip().lower() == "none":
        return None
    paths = SAMPLE if setting.strip().lower() == "sample" else tuple(Path(p.strip()) for p in setting.split(","))
    try:
        labels = read_labels(paths)
    except (OSError, ValueError, BadInput) as exc:
        raise ConfigError(f"retrieval.question_memory: cannot read {setting}: {exc}") from None
    key = hashlib.sha256(json.dumps([[x.question, x.source] for x in labels]).encode()).hexdigest()[:16]
    precision = getattr(embedder, "precision", "fp32")
    cache = cache_dir / f"question-memory-{key}-{precision}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        vectors = np.load(cache)
    else:
        log.info("embedding %d labelled questions for the question memory", len(labels))
        vectors = np.asarray(embedder.embed([x.question for x in labels]), dtype=np.float32).reshape(len(labels), -1)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(".tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(cache)
    return QuestionMemory(labels, vectors, embedder.embed, min_similarity)
