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
holds no other document, nor another version of one (either may answer it).
Which documents those are is read from the file itself: the sources its
answerable questions name; for the sample's labels, also the sample files'
hashes, so an edited sample article that is ingested again ends them too.

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
from typing import Callable, Mapping, Sequence

import numpy as np

from core.errors import BadInput, ConfigError
from core.jsonl import read_jsonl

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_KB = Path(__file__).resolve().parent / "sample_kb"
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
                 min_similarity: float = 0.7, versions: Mapping[str, str] | None = None) -> None:
        """`versions`: the file hashes of the documents the labels were written against, where known."""
        self.labels = list(labels)
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.embed = embed
        self.min_similarity = min_similarity
        # The documents its "not covered" labels were written against.
        self.documents = frozenset(label.source for label in self.labels if label.source)
        self.versions = dict(versions or {})

    def current(self, documents: Mapping[str, str] | None) -> bool:
        """Whether the knowledge base (source -> file hash; None: unknown) holds only documents the
        labels were written against, in the versions they were written against where known."""
        return documents is not None and all(
            name in self.documents and self.versions.get(name, digest) == digest for name, digest in documents.items())

    def recall(self, question: str, documents: Mapping[str, str] | None) -> Recalled | None:
        """The closest labelled question, if close enough; a "not covered" one only while the
        knowledge base (`documents`) is `current`."""
        if not self.labels:
            return None
        vector = np.asarray(self.embed([question])[0], dtype=np.float32)
        sims = self.vectors @ vector
        stale = not self.current(documents)
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
    sample = setting.strip().lower() == "sample"
    paths = SAMPLE if sample else tuple(Path(p.strip()) for p in setting.split(","))
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
    versions = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SAMPLE_KB.iterdir()} if sample else None
    return QuestionMemory(labels, vectors, embedder.embed, min_similarity, versions)
