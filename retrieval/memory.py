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

Agents' up-votes teach it too (`learned`): the first question of a
conversation whose answer an agent rated up, and nobody down, is labelled with
the article the answer came from, or, where the answer was "I don't know", as
one the articles do not cover; that label counts only while no document was
ingested after it. They are read from the exchange log, so an erased
conversation takes its label with it.

The file is JSONL, in the evaluation's question format (`{"question", "source"}`,
or `"source": null` with `"answerable": false`); the sample knowledge base
ships with the labelled questions its sentence ranker was trained on. Vectors
are cached beside the trained classifiers, keyed by the file's contents.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
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
    at: str | None = None  # when it was learned (ISO time); None: from a file


# What agents' votes taught: a version that changes whenever they change, and the labels.
Learned = Callable[[], tuple[object, list[Label]]]


def read_labels(paths: Sequence[Path]) -> list[Label]:
    def valid(r: dict) -> bool:
        return isinstance(r.get("question"), str) and (
            isinstance(r.get("source"), str) or (r.get("source") is None and r.get("answerable") is False))

    return [Label(r["question"], r.get("source")) for path in paths
            for r in read_jsonl(path, valid, "'question', and 'source' unless 'answerable' is false")]


class QuestionMemory:
    def __init__(self, labels: Sequence[Label], vectors: np.ndarray, embed: Callable[[list[str]], list],
                 min_similarity: float = 0.7, versions: Mapping[str, str] | None = None,
                 learned: Learned | None = None, refresh_s: float = 5.0) -> None:
        """`versions`: the file hashes of the documents the labels were written against, where known.
        `refresh_s`: how often to ask whether the votes changed (each asking reads the feedback table)."""
        self.filed = list(labels)
        self.filed_vectors = np.asarray(vectors, dtype=np.float32)
        # The labels and their vectors, swapped whole: a turn reading them meanwhile sees one or the other.
        self._index: tuple[list[Label], np.ndarray] = (self.filed, self.filed_vectors)
        self.embed = embed
        self.min_similarity = min_similarity
        # The documents its "not covered" labels were written against.
        self.documents = frozenset(label.source for label in self.filed if label.source)
        self.versions = dict(versions or {})
        self.learned = learned
        self._learned_version: object = None
        self.refresh_s = refresh_s
        self._asked_at = float("-inf")
        self._vector_of: dict[str, np.ndarray] = {}  # learned questions' vectors, in memory only
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        """Add what agents' votes taught, re-read whenever they changed."""
        if self.learned is None or time.monotonic() - self._asked_at < self.refresh_s:
            return
        with self._lock:
            self._asked_at = time.monotonic()
            version, learned = self.learned()
            if version == self._learned_version:
                return
            new = sorted({x.question for x in learned} - set(self._vector_of))
            if new:
                for question, vector in zip(new, np.asarray(self.embed(new), dtype=np.float32)):
                    self._vector_of[question] = vector
            self._vector_of = {x.question: self._vector_of[x.question] for x in learned}  # erased ones go
            vectors = [self._vector_of[x.question] for x in learned]
            self._index = (self.filed + list(learned),
                           np.vstack([*([self.filed_vectors] if self.filed else []), *vectors]) if vectors
                           else self.filed_vectors)
            self._learned_version = version

    def current(self, documents: Mapping[str, str] | None) -> bool:
        """Whether the knowledge base (source -> file hash; None: unknown) holds only documents the
        labels were written against, in the versions they were written against where known."""
        return documents is not None and all(
            name in self.documents and self.versions.get(name, digest) == digest for name, digest in documents.items())

    def recall(self, question: str, documents: Mapping[str, str] | None,
               updated_at: str | None = None) -> Recalled | None:
        """The closest labelled question, if close enough. A "not covered" label from a file counts
        only while the knowledge base (`documents`) is `current`; a learned one only while no
        document was ingested after it (`updated_at`: the latest ingest)."""
        self._refresh()
        labels, vectors = self._index
        if not labels:
            return None
        vector = np.asarray(self.embed([question])[0], dtype=np.float32)
        sims = vectors @ vector
        stale = not self.current(documents)
        for i in np.argsort(-sims):
            if sims[i] < self.min_similarity:
                return None
            label = labels[int(i)]
            if label.source is None and (stale if label.at is None else _ingested_since(updated_at, label.at)):
                continue  # a later document may answer it: the next closest label decides
            return Recalled(label.question, label.source, round(float(sims[i]), 4))
        return None


def _ingested_since(updated_at: str | None, at: str) -> bool:
    """Whether the latest ingest (kept to the second) may have come after `at`; unknown: yes."""
    if updated_at is None:
        return True
    return datetime.fromisoformat(updated_at) >= datetime.fromisoformat(at).replace(microsecond=0)


def load_memory(setting: str, embedder, cache_dir: Path | None, min_similarity: float,
                learned: Learned | None = None, refresh_s: float = 5.0) -> QuestionMemory | None:
    """`retrieval.question_memory`: "sample" (the shipped labels about the sample knowledge base),
    paths to JSONL files (comma-separated), or "none"; `learned`: what agents' votes taught, if
    anything. A file that is missing or malformed stops start-up rather than serving without the
    memory that was asked for."""
    none = setting.strip().lower() == "none"
    if none and learned is None:
        return None
    sample = setting.strip().lower() == "sample"
    paths = () if none else SAMPLE if sample else tuple(Path(p.strip()) for p in setting.split(","))
    try:
        labels = read_labels(paths)
    except (OSError, ValueError, BadInput) as exc:
        raise ConfigError(f"retrieval.question_memory: cannot read {setting}: {exc}") from None
    key = hashlib.sha256(json.dumps([[x.question, x.source] for x in labels]).encode()).hexdigest()[:16]
    precision = getattr(embedder, "precision", "fp32")
    cache = cache_dir / f"question-memory-{key}-{precision}.npy" if cache_dir else None
    if not labels:
        vectors = np.zeros((0, 0), dtype=np.float32)
    elif cache is not None and cache.exists():
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
    return QuestionMemory(labels, vectors, embedder.embed, min_similarity, versions, learned, refresh_s)
