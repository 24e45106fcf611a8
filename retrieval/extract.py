"""Extractive answers: the passages' own sentences that answer the question, each cited.

A small model's answers are often unsupported; the articles' sentences are
not. Every sentence of the retrieved passages is scored against the question:
cosine similarity of their embeddings, plus a share of the question's content
words the sentence contains, plus a little of its passage's retrieval score.
The best sentence leads, and the next `max_sentences - 1` best follow, in the
order they stand in their passages (on the dev questions three sentences held
the key facts more often than one or two, and no margin under the best helped). Each carries
the marker of its passage ([1] is the first source shown). If even the best
sentence scores under `min_support`, the passages do not answer the question
and there is no extract: the caller says it does not know.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from retrieval.rerank import SentenceReranker, sentences
from retrieval.search import tokenize
from retrieval.store import Hit

_LIST_MARK = re.compile(r"^(\d+[.)]|[-*•])\s+")
_EMPHASIS = re.compile(r"\*\*|__|`")


@dataclass(frozen=True)
class Extract:
    text: str  # the answer, with citation markers
    sentences: tuple[tuple[str, int], ...]  # (sentence, 1-based passage number)
    support: float  # the best sentence's score


@dataclass(frozen=True)
class ExtractiveAnswerer:
    """The reranker embeds, and caches, each chunk's sentences: the same vectors serve here."""

    reranker: SentenceReranker
    min_support: float = 0.75
    max_sentences: int = 3
    max_list_items: int = 5  # after a lead sentence that introduces a list (ends with ":")
    lexical_weight: float = 0.3
    rank_weight: float = 0.5

    def answer(self, question: str, hits: Sequence[Hit]) -> Extract | None:
        scored = self.score(question, hits)
        if not scored or scored[0][0] < self.min_support:
            return None
        best = scored[0][0]
        chosen = scored[: self.max_sentences]
        # Keep the best first; sentences after it read in the order of their passages.
        lead, rest = chosen[0], sorted(chosen[1:], key=lambda s: (s[2], s[3]))
        picked = [lead, *rest]
        if lead[1].rstrip().endswith(":"):
            # "To start a return:" says nothing alone; its list is the answer.
            following = sentences(hits[lead[2]].text)[lead[3] + 1: lead[3] + 1 + self.max_list_items]
            picked = [lead, *((best, text, lead[2], lead[3] + 1 + k) for k, text in enumerate(following))]
        parts = [(_clean(text), passage + 1) for _, text, passage, _ in picked]
        return Extract(" ".join(f"{text} [{n}]" for text, n in parts), tuple(parts), round(best, 4))

    def score(self, question: str, hits: Sequence[Hit]) -> list[tuple[float, str, int, int]]:
        """(score, sentence, passage index, sentence index), best first."""
        if not hits:
            return []
        embedder = self.reranker.embedder
        [q] = embedder.embed([question])
        query = np.asarray(q, dtype=np.float32)
        words = set(tokenize(question))
        out = []
        for p, hit in enumerate(hits):
            texts = sentences(hit.text)
            sims = self.reranker.sentence_vectors(hit) @ query
            for i, (text, sim) in enumerate(zip(texts, sims)):
                overlap = len(words & set(tokenize(text))) / len(words) if words else 0.0
                out.append((float(sim) + self.lexical_weight * overlap + self.rank_weight * hit.score, text, p, i))
        out.sort(key=lambda s: -s[0])
        return out


    def cite(self, answer: str, hits: Sequence[Hit]) -> str:
        """A written answer with each sentence marked with the passage that supports it best."""
        if not hits or not answer.strip():
            return answer
        claims = [c for c in _ANSWER_SENTENCE.split(answer.strip()) if c.strip()]
        embedder = self.reranker.embedder
        vectors = np.asarray(embedder.embed(claims), dtype=np.float32)
        best = np.full(len(claims), -2.0)
        source = np.zeros(len(claims), dtype=int)
        for p, hit in enumerate(hits):
            sims = (vectors @ self.reranker.sentence_vectors(hit).T).max(axis=1)
            better = sims > best
            best[better], source[better] = sims[better], p
        marked = [c if _MARKER.search(c) else f"{c.rstrip()} [{source[i] + 1}]" for i, c in enumerate(claims)]
        return " ".join(marked)


_ANSWER_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_MARKER = re.compile(r"\[\d+\]")


def _clean(sentence: str) -> str:
    """A sentence as it reads in an answer: no list bullet, ends with punctuation."""
    text = _LIST_MARK.sub("", _EMPHASIS.sub("", sentence).strip())
    return text if text[-1:] in ".!?:" else text + "."
