"""Which sentences of the passages answer a question: features, and a learned ranker over them.

Each sentence of the retrieved passages gets a row of features (how close its
embedding is to the question's under the sentence scorer, all-mpnet-base-v2 by
default, how much of the question's rarer words it
holds, its passage's rank and score, whether it holds the kind of answer asked
for, whether it is a heading, a list's lead-in or a sentence that leans on the
one before). Boosted trees (scikit-learn's histogram gradient boosting,
exported to JSON and evaluated here with numpy), trained on questions about
the sample knowledge base written for training
(`retrieval/data/answers_train*.jsonl`; `python -m retrieval.ranker_training`
rebuilds it), weigh them; a sentence is a positive when it holds one of its
question's key facts. The trees read feature interactions a line cannot
("holds a duration" counts for more when the question asks "how long"). A
logistic regression over the same features is the other kind
(`--kind linear`). The features say nothing of any one knowledge base's
words, so the weights carry over to another.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from core.errors import ConfigError
from retrieval.rerank import SentenceReranker, sentences
from retrieval.search import tokenize
from retrieval.store import Hit

DEFAULT_RANKER = Path(__file__).resolve().parent / "data" / "sentence_ranker.json"

# What kind of answer a question asks for, and what a sentence holding one looks like: "how long
# would that take" is answered by "allow 10 business days", whatever else the sentences share.
_DURATION = re.compile(r"\b(\d+|one|two|three|four|five|six|seven|ten|twelve|24)[- ](business |working |calendar )?"
                       r"(minute|hour|day|week|month|year)s?\b|\b\d{1,2}(:\d\d)? ?[ap]\.?m\b|\bwithin\b", re.I)
_AMOUNT = re.compile(r"[$£€]\s?\d|\b\d+(\.\d+)?\s?%|\bfree\b|\bno (fee|charge|cost)\b", re.I)
_NUMBER = re.compile(r"\b\d+\b|\b(one|two|three|four|five|six|ten|every|each)\b", re.I)
ASKS = (
    (re.compile(r"\bhow (long|soon|quickly|fast)\b|\bwhen\b|\bwhat time\b|\bhow many (days|hours|weeks)\b"
                r"|\b(deadline|hear back|time ?frame|turnaround)\b", re.I), _DURATION),
    (re.compile(r"\bhow much\b|\bcosts?\b|\bprice\b|\bfees?\b|\bcharged?\b|\bcheapest\b|\bpay\b|\bextra\b", re.I),
     _AMOUNT),
    (re.compile(r"\bhow (many|often)\b|\bminimum\b|\bmaximum\b|\blimit\b", re.I), _NUMBER),
)
HEADING = re.compile(r"^(\d+[.)]\s+)?[^.!?:;]{0,40}$")  # short, no punctuation: a heading line
_LEADING_PRONOUN = re.compile(r"^(they|it|this|these|that|those|he|she|its|their)\b", re.I)
_DIGIT = re.compile(r"\d")

FEATURES = (
    "cosine",  # question . sentence embeddings (the sentence scorer's: all-mpnet-base-v2 by default)
    "rare_overlap",  # share of the question's words' idf that the sentence holds
    "overlap",  # share of the question's words it holds
    "passage_score",  # the passage's retrieval score
    "passage_rank",  # 0 for the first source
    "answer_kind",  # holds the kind of answer asked for (a duration, an amount, a number)
    "asks_kind",  # the question asks for such a kind
    "position",  # the sentence's place in its passage
    "first",  # the passage's first sentence
    "length",  # words, capped at 40, over 40
    "heading",  # a short line without punctuation
    "lead_in",  # ends with ":" (introduces a list)
    "pronoun",  # starts with "they", "it", "this"...: leans on the sentence before
    "heading_cosine",  # question . the passage's "Title > Heading"
    "digit",  # holds a digit
    "cosine_gap",  # cosine minus the best cosine among all the sentences
    "rare_overlap_gap",  # rare_overlap minus the best
)


@dataclass(frozen=True)
class Candidate:
    text: str
    passage: int  # index into the hits
    index: int  # index into the passage's sentences


def features(question: str, hits: Sequence[Hit], reranker: SentenceReranker,
             term_weights: Callable[[Sequence[str]], dict[str, float]] | None = None,
             scorer: SentenceReranker | None = None) -> tuple[np.ndarray, list[Candidate]]:
    """One row of `FEATURES` per sentence of the passages, and the sentences. `scorer`: the
    sentence scorer whose cosine the "cosine" feature reads (None: the knowledge base's embedder,
    `reranker`'s, which reads the headings either way)."""
    if not hits:
        return np.zeros((0, len(FEATURES)), dtype=np.float32), []
    embedder = reranker.embedder
    query = np.asarray(embedder.embed([question])[0], dtype=np.float32)
    headings = np.asarray(embedder.embed([h.text.split("\n\n", 1)[0] for h in hits]), dtype=np.float32) @ query
    scored_query = np.asarray(scorer.embedder.embed([question])[0], dtype=np.float32) if scorer else query
    words = set(tokenize(question))
    weight = term_weights(sorted(words)) if term_weights and words else dict.fromkeys(words, 1.0)
    total = sum(weight.values())
    wanted = [shape for asks, shape in ASKS if asks.search(question)]
    rows, candidates = [], []
    for p, hit in enumerate(hits):
        sims = (scorer or reranker).sentence_vectors(hit) @ scored_query
        for i, (text, sim) in enumerate(zip(sentences(hit.text), sims)):
            held = words & set(tokenize(text))
            rows.append([
                float(sim),
                sum(weight[w] for w in held) / total if total else 0.0,
                len(held) / len(words) if words else 0.0,
                hit.score,
                p,
                any(shape.search(text) for shape in wanted),
                bool(wanted),
                i,
                i == 0,
                min(len(text.split()), 40) / 40,
                bool(HEADING.match(text)),
                text.rstrip().endswith(":"),
                bool(_LEADING_PRONOUN.match(text)),
                float(headings[p]),
                bool(_DIGIT.search(text)),
                0.0,
                0.0,
            ])
            candidates.append(Candidate(text, p, i))
    x = np.asarray(rows, dtype=np.float32)
    x[:, FEATURES.index("cosine_gap")] = x[:, 0] - x[:, 0].max()
    x[:, FEATURES.index("rare_overlap_gap")] = x[:, 1] - x[:, 1].max()
    return x, candidates


def _read(path: Path) -> dict:
    body = json.loads(Path(path).read_text(encoding="utf-8"))
    if body.get("features") != list(FEATURES):
        # Weights for other features would rank silently wrong.
        raise ValueError(f"{path}: trained on other features; rebuild it with "
                         "`python -m retrieval.ranker_training`")
    return body


@dataclass(frozen=True)
class SentenceRanker:
    """A linear model over standardised features: higher means likelier to hold the answer."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    meta: dict  # what it was trained on, and how it scored

    def score(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"kind": "linear", "features": list(FEATURES), "coef": self.coef.round(6).tolist(),
                "intercept": round(float(self.intercept), 6), "mean": self.mean.round(6).tolist(),
                "scale": self.scale.round(6).tolist(), "meta": self.meta}
        path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "SentenceRanker":
        body = _read(path)
        return cls(np.asarray(body["coef"], dtype=np.float32), float(body["intercept"]),
                   np.asarray(body["mean"], dtype=np.float32), np.asarray(body["scale"], dtype=np.float32),
                   body.get("meta", {}))


@dataclass(frozen=True)
class TreeRanker:
    """Boosted regression trees over the features: the score is the baseline plus each tree's
    leaf value (a sentence goes left where its feature is at most the node's threshold)."""

    baseline: float
    trees: tuple[dict[str, np.ndarray], ...]  # per tree: feature, threshold, left, right, leaf, value
    meta: dict

    def score(self, x: np.ndarray) -> np.ndarray:
        rows = np.arange(len(x))
        total = np.full(len(x), self.baseline, dtype=np.float64)
        for tree in self.trees:
            node = np.zeros(len(x), dtype=np.int64)
            while not (leaf := tree["leaf"][node]).all():
                left = x[rows, tree["feature"][node]] <= tree["threshold"][node]
                node = np.where(leaf, node, np.where(left, tree["left"][node], tree["right"][node]))
            total += tree["value"][node]
        return total

    @classmethod
    def from_sklearn(cls, model, meta: dict) -> "TreeRanker":
        """From a fitted `HistGradientBoostingClassifier` (binary, numeric features, no missing values)."""
        trees = []
        for [predictor] in model._predictors:
            nodes = predictor.nodes
            trees.append({"feature": nodes["feature_idx"].astype(np.int64),
                          "threshold": nodes["num_threshold"].astype(np.float64),
                          "left": nodes["left"].astype(np.int64), "right": nodes["right"].astype(np.int64),
                          "leaf": nodes["is_leaf"].astype(bool), "value": nodes["value"].astype(np.float64)})
        return cls(float(np.ravel(model._baseline_prediction)[0]), tuple(trees), meta)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        trees = [{"feature": t["feature"].tolist(), "threshold": [round(float(v), 6) for v in t["threshold"]],
                  "left": t["left"].tolist(), "right": t["right"].tolist(), "leaf": t["leaf"].astype(int).tolist(),
                  "value": [round(float(v), 6) for v in t["value"]]} for t in self.trees]
        body = {"kind": "trees", "features": list(FEATURES), "baseline": round(self.baseline, 6), "trees": trees,
                "meta": self.meta}
        path.write_text(json.dumps(body, separators=(",", ":")) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "TreeRanker":
        body = _read(path)
        trees = tuple({"feature": np.asarray(t["feature"], dtype=np.int64),
                       "threshold": np.asarray(t["threshold"], dtype=np.float64),
                       "left": np.asarray(t["left"], dtype=np.int64), "right": np.asarray(t["right"], dtype=np.int64),
                       "leaf": np.asarray(t["leaf"], dtype=bool), "value": np.asarray(t["value"], dtype=np.float64)}
                      for t in body["trees"])
        return cls(float(body["baseline"]), trees, body.get("meta", {}))


Ranker = SentenceRanker | TreeRanker


def read_ranker(path: Path) -> Ranker:
    """Either kind, as its file says."""
    kind = json.loads(Path(path).read_text(encoding="utf-8")).get("kind", "linear")
    if kind not in ("linear", "trees"):
        raise ValueError(f"{path}: unknown ranker kind {kind!r}")
    return TreeRanker.load(path) if kind == "trees" else SentenceRanker.load(path)


def load_ranker(setting: str) -> Ranker | None:
    """`model.extractive_ranker`: "default", a path, or "none". A file that is missing or unreadable
    stops start-up (ConfigError) rather than answering with another ranking than the one set."""
    if setting.strip().lower() == "none":
        return None
    path = DEFAULT_RANKER if setting.strip().lower() == "default" else Path(setting)
    try:
        return read_ranker(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"model.extractive_ranker: cannot load {path}: {exc}") from None
