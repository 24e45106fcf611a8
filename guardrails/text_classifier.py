"""A binary text classifier: character and word n-grams plus sentence embeddings.

It reads attacks (the injection check) and the wording of angry and distressed
messages (the sentiment check's second opinion).

Why both: n-grams catch the wording attacks share ("ignore ... instructions",
"<|im_start|>", "base64"), including misspelt and mixed-language forms, and do
not fire on a topic alone; the embedding carries meaning across paraphrases.
One logistic regression over both, trained on labelled JSONL (`{"text",
"label"}`), beat either alone and the packaged NanoGuard model on a held-out
set written independently (`helpdesk eval guardrails` reports all of them).

Thresholds are not hand-set probabilities: at training time, 5-fold
cross-validation scores every labelled row with a model that never saw it, and
the threshold for a target false-positive rate is read off the benign rows'
out-of-fold scores. A policy asks for "flag at 2% FPR" and gets it, whatever
data the model was retrained on.

The trained model is plain JSON (vocabularies, idf weights, coefficients),
never a pickle, stamped with the hash of its training data.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from guardrails.text import normalise
from guardrails.heads import data_hash

log = logging.getLogger(__name__)

CHAR_NGRAMS = (2, 5)
WORD_NGRAMS = (1, 2)
EMBEDDING_WEIGHT = 0.5  # scales the 384 unit-vector features against the tf-idf block
REGULARISATION = 16.0  # C; chosen by cross-validation on the injection set
FOLDS = 5


def _vectorizers(vocabularies: Sequence[dict] | None = None):
    from sklearn.feature_extraction.text import TfidfVectorizer

    char_vocab, word_vocab = vocabularies or (None, None)
    return (
        TfidfVectorizer(analyzer="char_wb", ngram_range=CHAR_NGRAMS, min_df=2, sublinear_tf=True,
                        vocabulary=char_vocab),
        TfidfVectorizer(analyzer="word", ngram_range=WORD_NGRAMS, sublinear_tf=True, vocabulary=word_vocab),
    )


def _features(vectorizers, texts: list[str], vectors: np.ndarray):
    from scipy.sparse import csr_matrix, hstack

    blocks = [v.transform(texts) for v in vectorizers]
    return hstack([*blocks, csr_matrix(vectors * EMBEDDING_WEIGHT)]).tocsr()


def _fit(texts: list[str], vectors: np.ndarray, positive: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    vectorizers = _vectorizers()
    for v in vectorizers:
        v.fit(texts)
    model = LogisticRegression(C=REGULARISATION, max_iter=5000, class_weight="balanced")
    model.fit(_features(vectorizers, texts, vectors), positive)
    return vectorizers, model


def threshold_for_fpr(benign_scores: np.ndarray, fpr: float) -> float:
    """The lowest threshold at or above which at most `fpr` of these (sorted) benign scores lie."""
    allowed = int(np.floor(fpr * len(benign_scores)))  # benign rows that may score at or above it
    if allowed >= len(benign_scores):
        return 0.0
    return float(np.nextafter(benign_scores[len(benign_scores) - 1 - allowed], np.inf))


def _probability(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


@dataclass
class TextClassifier:
    positive: str
    vocabularies: tuple[dict, dict]
    idf: tuple[np.ndarray, np.ndarray]
    coef: np.ndarray
    intercept: float
    trained_on: str
    # Out-of-fold scores of the benign training rows, sorted: the FPR of any threshold.
    benign_scores: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    # Every training row's out-of-fold score, in training order: what `eval guardrails` reports
    # the cross-validation from, without training five models again.
    out_of_fold: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    base: str | None = None  # with reviewers' labels added: the hash of the shipped rows alone
    _vectorizers: tuple = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        vectorizers = _vectorizers(self.vocabularies)
        for v, idf in zip(vectorizers, self.idf):
            v.idf_ = idf
        self._vectorizers = vectorizers

    def scores(self, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
        """Probability of the positive label for each text (`vectors`: their embeddings)."""
        features = _features(self._vectorizers, [normalise(t) for t in texts], np.asarray(vectors))
        return _probability(features @ self.coef + self.intercept)

    def threshold_for_fpr(self, fpr: float) -> float:
        """The lowest score threshold whose cross-validated false-positive rate is at most `fpr`."""
        if not len(self.benign_scores):
            raise ValueError("classifier has no cross-validation scores to set a threshold from")
        return threshold_for_fpr(self.benign_scores, fpr)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({
            "positive": self.positive, "trained_on": self.trained_on, "intercept": self.intercept,
            "vocabularies": [{k: int(i) for k, i in v.items()} for v in self.vocabularies], "idf": [i.tolist() for i in self.idf],
            "coef": self.coef.tolist(), "benign_scores": self.benign_scores.tolist(),
            "out_of_fold": self.out_of_fold.tolist(), "base": self.base,
        }))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "TextClassifier":
        d = json.loads(path.read_text())
        return cls(d["positive"], tuple(d["vocabularies"]), tuple(np.asarray(i) for i in d["idf"]),
                   np.asarray(d["coef"]), float(d["intercept"]), d["trained_on"], np.asarray(d["benign_scores"]),
                   np.asarray(d["out_of_fold"]), d.get("base"))


def folds(texts: Sequence[str], positive: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The cross-validation splits, (train, test) indices; fixed, so two models' out-of-fold
    scores of one row come from models that saw the same other rows."""
    from sklearn.model_selection import StratifiedKFold

    return list(StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(texts, positive))


def out_of_fold_scores(texts: list[str], vectors: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Each row scored by a model trained on the other folds (vocabulary included)."""
    scores = np.zeros(len(texts))
    for train, test in folds(texts, positive):
        vectorizers, model = _fit([texts[i] for i in train], vectors[train], positive[train])
        scores[test] = model.predict_proba(_features(vectorizers, [texts[i] for i in test], vectors[test]))[:, 1]
    return scores


def train(embedder, rows: list[dict], positive_label: str) -> TextClassifier:
    texts = [normalise(r["text"]) for r in rows]
    positive = np.asarray([r["label"] == positive_label for r in rows])
    vectors = np.asarray(embedder.embed(texts))
    oof = out_of_fold_scores(texts, vectors, positive)
    vectorizers, model = _fit(texts, vectors, positive)
    return TextClassifier(
        positive_label, tuple(v.vocabulary_ for v in vectorizers), tuple(v.idf_ for v in vectorizers),
        model.coef_[0], float(model.intercept_[0]), data_hash(rows), np.sort(oof[~positive]), oof,
    )


def classifier_for(embedder, rows: list[dict], positive_label: str, cache: Path | None) -> TextClassifier:
    """The classifier trained on `rows`: loaded from `cache` when it was trained on the same rows
    (or on them and reviewers' labels, `retrain`)."""
    if cache is not None and cache.exists():
        try:
            model = TextClassifier.load(cache)
            if data_hash(rows) in (model.trained_on, model.base):
                return model
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("retraining: cached classifier %s is unreadable (%s)", cache, exc)
    log.info("training the %s classifier on %d labelled rows", positive_label, len(rows))
    model = train(embedder, rows, positive_label)
    if cache is not None:
        model.save(cache)
    return model


def retrain(embedder, rows: list[dict], extra: Sequence[dict], positive_label: str, cache: Path) -> TextClassifier:
    """Train on `rows` plus `extra` (reviewers' labels) and cache it; served for as long as `rows`
    are unchanged."""
    model = train(embedder, list(rows) + list(extra), positive_label)
    model.base = data_hash(rows)
    model.save(cache)
    return model
