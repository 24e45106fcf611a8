"""Classification heads on the embedding model's vectors: the classic recipe.

Sentence embeddings (MiniLM, frozen) -> multinomial logistic regression,
trained on labelled JSONL (`{"text", "label"}`) shipped in `guardrails/data/`
(hand-written for this project) and retrainable from reviewers' labels. A
head is a few thousand numbers, saved as JSON (never a pickle) with the hash
of the data it learned from, so a changed data file retrains it.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from core.jsonl import read_jsonl

log = logging.getLogger(__name__)
DATA = Path(__file__).with_name("data")


def load_labelled(path: Path, labels: Sequence[str]) -> list[dict]:
    rows = read_jsonl(path, lambda r: r.get("label") in labels and isinstance(r.get("text"), str),
                      f"'text' and a 'label' in {', '.join(labels)}")
    return [{"text": r["text"], "label": r["label"]} for r in rows]


def data_hash(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def fit(vectors: np.ndarray, labels: Sequence[str], c: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(vectors, list(labels))


@dataclass
class Head:
    classes: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    trained_on: str
    base: str | None = None  # with reviewers' labels added: the hash of the shipped data alone

    def predict(self, vectors: np.ndarray) -> list[dict[str, float]]:
        """Class probabilities per row (binary heads have one coefficient row, as sklearn stores them)."""
        logits = vectors @ self.coef.T + self.intercept
        if logits.shape[1] == 1:  # binary: sklearn keeps the positive class's logit only
            logits = np.hstack([np.zeros_like(logits), logits])
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [dict(zip(self.classes, map(float, row))) for row in probs]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"classes": self.classes, "coef": self.coef.tolist(),
                                   "intercept": self.intercept.tolist(), "trained_on": self.trained_on,
                                   "base": self.base}))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "Head":
        data = json.loads(path.read_text())
        return cls(data["classes"], np.asarray(data["coef"]), np.asarray(data["intercept"]), data["trained_on"],
                   data.get("base"))


def train(embedder, rows: list[dict], c: float) -> Head:
    model = fit(np.asarray(embedder.embed([r["text"] for r in rows])), [r["label"] for r in rows], c)
    return Head(list(model.classes_), model.coef_, model.intercept_, data_hash(rows))


def head_for(embedder, data: Path | Sequence[Path], labels: Sequence[str], cache: Path | None,
             c: float = 4.0) -> Head:
    """The head trained on `data` (one file or several): loaded from `cache` when it was trained
    on the same data."""
    files = [data] if isinstance(data, Path) else list(data)
    rows = [row for path in files for row in load_labelled(path, labels)]
    if cache is not None and cache.exists():
        head = Head.load(cache)
        # A head retrained with reviewers' labels still rests on this data: labels changing in the
        # data directory never force a retrain (only `helpdesk train` reads them).
        if data_hash(rows) in (head.trained_on, head.base):
            return head
    log.info("training a classification head on %d labelled rows from %s", len(rows),
             ", ".join(p.name for p in files))
    head = train(embedder, rows, c)
    if cache is not None:
        head.save(cache)
    return head


def retrain_head(embedder, data: Sequence[Path], labels: Sequence[str], cache: Path, extra: Sequence[dict],
                 c: float = 4.0) -> Head:
    """Train on the shipped data plus `extra` labelled rows (reviewers' labels) and cache it."""
    rows = [row for path in data for row in load_labelled(path, labels)]
    head = train(embedder, rows + list(extra), c)
    head.base = data_hash(rows)
    head.save(cache)
    return head


def cross_val_probs(embedder, rows: list[dict], c: float, folds: int = 5) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Out-of-fold class probabilities: every row is scored by a head that never saw it."""
    from sklearn.model_selection import StratifiedKFold

    vectors = np.asarray(embedder.embed([r["text"] for r in rows]))
    labels = np.asarray([r["label"] for r in rows])
    classes = sorted(set(labels))
    probs = np.zeros((len(rows), len(classes)))
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=0).split(vectors, labels):
        model = fit(vectors[train_idx], labels[train_idx], c)
        probs[np.ix_(test_idx, [classes.index(k) for k in model.classes_])] = model.predict_proba(vectors[test_idx])
    return probs, classes, labels
