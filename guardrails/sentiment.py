"""Customer sentiment and handoff: a small classification head on the embedding model's vectors.

The classic recipe: sentence embeddings (MiniLM, frozen) -> multinomial
logistic regression, trained on labelled messages (`guardrails/data/
sentiment.jsonl`, hand-written for this project; reviewers' labels can be
added later and the head retrained). The head is a few thousand numbers,
saved as JSON (never a pickle) with the hash of the data it learned from.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import BadInput

log = logging.getLogger(__name__)
LABELLED = Path(__file__).with_name("data") / "sentiment.jsonl"
LABELS = ("neutral", "angry", "distressed", "human_request")


def load_labelled(path: Path = LABELLED) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("label") not in LABELS or not isinstance(row.get("text"), str):
            raise BadInput(f"{path}:{n}: needs 'text' and a 'label' in {', '.join(LABELS)}")
        rows.append(row)
    return rows


def data_hash(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def fit_head(vectors: np.ndarray, labels: list[str], c: float = 4.0):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
    model.fit(vectors, labels)
    return model


@dataclass
class SentimentHead:
    classes: list[str]
    coef: np.ndarray
    intercept: np.ndarray
    trained_on: str

    def predict(self, vectors: np.ndarray) -> list[dict[str, float]]:
        logits = vectors @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        return [dict(zip(self.classes, map(float, row))) for row in probs]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"classes": self.classes, "coef": self.coef.tolist(),
                                   "intercept": self.intercept.tolist(), "trained_on": self.trained_on}))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "SentimentHead":
        data = json.loads(path.read_text())
        return cls(data["classes"], np.asarray(data["coef"]), np.asarray(data["intercept"]), data["trained_on"])


def train(embedder, rows: list[dict]) -> SentimentHead:
    vectors = np.asarray(embedder.embed([r["text"] for r in rows]))
    model = fit_head(vectors, [r["label"] for r in rows])
    return SentimentHead(list(model.classes_), model.coef_, model.intercept_, data_hash(rows))


def head_for(embedder, cache: Path | None, data: Path = LABELLED) -> SentimentHead:
    """The head trained on `data`: loaded from `cache` when it was trained on the same data."""
    rows = load_labelled(data)
    if cache is not None and cache.exists():
        head = SentimentHead.load(cache)
        if head.trained_on == data_hash(rows):
            return head
    log.info("training the sentiment head on %d labelled messages", len(rows))
    head = train(embedder, rows)
    if cache is not None:
        head.save(cache)
    return head


def cross_validate(embedder, rows: list[dict], folds: int = 5) -> dict:
    """Per-label precision, recall and F1 from stratified k-fold cross-validation."""
    from sklearn.metrics import precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold

    vectors = np.asarray(embedder.embed([r["text"] for r in rows]))
    labels = np.asarray([r["label"] for r in rows])
    predicted = np.empty_like(labels)
    for train_idx, test_idx in StratifiedKFold(folds, shuffle=True, random_state=0).split(vectors, labels):
        predicted[test_idx] = fit_head(vectors[train_idx], list(labels[train_idx])).predict(vectors[test_idx])
    p, r, f, n = precision_recall_fscore_support(labels, predicted, labels=list(LABELS), zero_division=0)
    report = {label: {"precision": round(float(p[i]), 3), "recall": round(float(r[i]), 3),
                      "f1": round(float(f[i]), 3), "n": int(n[i])} for i, label in enumerate(LABELS)}
    report["macro_f1"] = round(float(np.mean(f)), 3)
    return report
