"""Train the sentence ranker: `python -m retrieval.ranker_training [--questions F] [--out F] [--kind K]`.

The questions (`retrieval/data/answers_train.jsonl` and `answers_train_b.jsonl`) were written for training,
apart from the answer evaluation's dev and held-out splits, about the sample
knowledge base. Each is searched as at serving time (a follow-up with the
question before it); every sentence of its passages is a row of
`retrieval.ranker.FEATURES`, a positive when it holds one of the question's key
facts. The model: boosted trees (scikit-learn's histogram gradient boosting,
100 trees of depth 3, classes balanced; exported as `TreeRanker`), or a
balanced logistic regression on standardised features (`--kind linear`).
Deterministic: the same questions and knowledge base give the same weights.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from retrieval.evaluate import has_fact
from retrieval.ranker import DEFAULT_RANKER, FEATURES, Ranker, SentenceRanker, TreeRanker, features
from retrieval.rerank import SentenceReranker
from retrieval.search import Retriever

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent / "data"
TRAIN_QUESTIONS = (DATA / "answers_train.jsonl", DATA / "answers_train_b.jsonl")


def _turns(items: Iterable[dict]) -> Iterable[tuple[str, list[str], list[str]]]:
    """(question, earlier questions, facts) for every answerable turn."""
    for item in items:
        if item.get("answerable", True) is False:
            continue
        yield item["question"], [], item["facts"]
        followup = item.get("followup")
        if followup:
            yield followup["question"], [item["question"]], followup["facts"]


def training_rows(items: Iterable[dict], retriever: Retriever, reranker: SentenceReranker,
                  scorer: SentenceReranker | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    xs, ys, questions = [], [], 0
    for question, earlier, facts in _turns(items):
        hits = retriever.context_for(question, earlier)
        # Scored as the extractive answerer scores it: a follow-up with the question before it.
        asked = f"{earlier[-1]} {question}" if earlier else question
        x, candidates = features(asked, hits, reranker, retriever.term_weights, scorer)
        if not candidates:
            continue
        questions += 1
        xs.append(x)
        ys.append(np.asarray([any(has_fact(c.text, f) for f in facts) for c in candidates]))
    if not xs:
        raise ValueError("no training question found any passage")
    return np.vstack(xs), np.concatenate(ys), questions


def train_ranker(items: list[dict], retriever: Retriever, reranker: SentenceReranker, c: float = 1.0,
                 source: str = "", kind: str = "trees", scorer: SentenceReranker | None = None,
                 sentence_model: str = "kb") -> Ranker:
    """`scorer` and `sentence_model`: the sentence scorer the "cosine" feature reads, and its
    `model.sentence_model` name, recorded so that a ranker is only served beside the same one."""
    x, y, questions = training_rows(items, retriever, reranker, scorer)
    if y.all() or not y.any():
        raise ValueError("the training sentences need both positives and negatives")
    if kind == "trees":
        from sklearn.ensemble import HistGradientBoostingClassifier

        # On the dev split the three best sentences held every key fact for 0.686 of the
        # questions with these trees, 0.641 with the logistic regression (MiniLM's cosine).
        model = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_depth=3, early_stopping=False,
                                               class_weight="balanced", random_state=0).fit(x, y)
        meta = {"kind": "trees", "questions": questions, "sentences": int(len(y)), "positives": int(y.sum()),
                "source": source, "sentence_model": sentence_model}
        return TreeRanker.from_sklearn(model, meta)
    if kind != "linear":
        raise ValueError(f"unknown ranker kind {kind!r} (trees, linear)")
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit((x - mean) / scale, y)
    meta = {"questions": questions, "sentences": int(len(y)), "positives": int(y.sum()), "c": c,
            "source": source, "sentence_model": sentence_model}
    return SentenceRanker(model.coef_[0].astype(np.float32), float(model.intercept_[0]),
                          mean.astype(np.float32), scale.astype(np.float32), meta)


def main(argv: list[str] | None = None) -> None:
    from assistant.app import Services
    from assistant.evaluate import load_items
    from core.settings import load_settings

    parser = argparse.ArgumentParser(description="Train the extractive answerer's sentence ranker.")
    parser.add_argument("--questions", type=Path, nargs="+", default=list(TRAIN_QUESTIONS))
    parser.add_argument("--out", type=Path, default=DEFAULT_RANKER)
    parser.add_argument("--c", type=float, default=1.0, help="inverse regularisation strength (linear)")
    parser.add_argument("--kind", choices=("trees", "linear"), default="trees")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    items = [item for path in args.questions for item in load_items(path)]
    source = ", ".join(f"{path.name} sha256:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
                       for path in args.questions)
    with tempfile.TemporaryDirectory() as home:  # always the sample knowledge base, never a user's
        environ = {**os.environ, "HELPDESK_HOME": home}
        environ.pop("HELPDESK_CONFIG", None)
        services = Services(load_settings(environ=environ))
        services.ensure_samples()
        ranker = train_ranker(items, services.retriever, services.reranker, args.c,
                              source, args.kind, services.sentence_scorer,
                              services.settings.model.sentence_model)
    ranker.save(args.out)
    log.info("sentence ranker written to %s: %s", args.out, ranker.meta)
    if isinstance(ranker, SentenceRanker):
        log.info("weights: %s", {f: round(float(w), 2) for f, w in zip(FEATURES, ranker.coef)})


if __name__ == "__main__":
    main()
