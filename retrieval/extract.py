"""Extractive answers: the passages' own sentences that answer the question, each cited.

A small model's answers are often unsupported; the articles' sentences are
not. Every sentence of the retrieved passages gets the features of
`retrieval.ranker`; the learned ranker orders them (without one, a fixed blend
of the same cosine, overlap, passage score and kind-of-answer features). The
best sentence leads, and the next `max_sentences - 1` best follow, in the
order they stand in their passages. A lead that introduces a list brings its
items; a list item brings the sentence that introduces its list. Each carries
the marker of its passage ([1] is the first source shown).

The cosine is a sentence scorer's, a larger embedding model than the
knowledge base's (all-mpnet-base-v2 by default, `model.sentence_model`): it
tells which sentence answers a question, and whether any does, better than
MiniLM (the README has the figures; int8 weights lose the gain, so it runs in
fp32).

Whether the passages answer at all is a separate figure, the support: the
best sentence's cosine + `lexical_weight` x its share of the question's rarer
words + `rank_weight` x its passage's score, less `unknown_penalty` for each
noun or adjective of the question that no chunk of the knowledge base holds
(a question about a "podcast" or "fabric swatches" is not answered by articles
that never name them, however close their sentences sound). Under
`min_support` there is no extract and the caller says it does not know.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from retrieval.ranker import FEATURES, Ranker, features
from retrieval.rerank import SentenceReranker, sentences
from retrieval.store import Hit

_COSINE, _RARE, _PASSAGE, _KIND, _HEADING = (
    FEATURES.index(f) for f in ("cosine", "rare_overlap", "passage_score", "answer_kind", "heading"))

_LIST_MARK = re.compile(r"^(\d+[.)]|[-*•])\s+")
_EMPHASIS = re.compile(r"\*\*|__|`")


@dataclass(frozen=True)
class Extract:
    text: str  # the answer, with citation markers
    sentences: tuple[tuple[str, int], ...]  # (sentence, 1-based passage number)
    support: float  # the best sentence's score, less the unknown-word penalty


@dataclass(frozen=True)
class Scored:
    score: float  # what orders the sentences
    support: float  # how well it matches the question, whatever kind of answer it holds
    text: str
    passage: int  # index into the hits
    index: int  # index into the passage's sentences


@dataclass(frozen=True)
class ExtractiveAnswerer:
    """The reranker embeds, and caches, each chunk's sentences: the same vectors serve here."""

    reranker: SentenceReranker
    min_support: float = 0.75
    max_sentences: int = 3
    max_list_items: int = 5  # after a lead sentence that introduces a list (ends with ":")
    lexical_weight: float = 0.5
    rank_weight: float = 0.5
    type_weight: float = 0.1  # without a ranker: for a sentence holding the kind of answer asked for
    ranker: Ranker | None = None
    # Weights for the question's words in the overlap share (the retriever's idf); None: all equal.
    term_weights: Callable[[Sequence[str]], dict[str, float]] | None = None
    # The question's nouns and adjectives, and which words no chunk holds; None: no penalty.
    nouns: Callable[[str], list[str]] | None = None
    unknown_words: Callable[[Sequence[str]], list[str]] | None = None
    unknown_penalty: float = 0.0
    # The sentence scorer whose cosine the ranker and the support read; None: the knowledge base's embedder.
    scorer: SentenceReranker | None = None

    def answer(self, question: str, hits: Sequence[Hit], earlier: Sequence[str] = (),
               covered: bool | None = None) -> Extract | None:
        """`earlier`: the conversation's previous questions, oldest first. A follow-up ("and next
        day?") is read together with the question before it, as retrieval searches it.
        `covered`: what a labelled question close to this one says (`retrieval.memory`): True,
        the passages answer it whatever the support; False, they do not; None, the support decides."""
        if covered is False:
            return None
        asked = f"{earlier[-1]} {question}" if earlier else question
        scored = self.score(asked, hits)
        # Only the new question's words: the earlier one's were judged on its own turn.
        support = max((s.support for s in scored), default=0.0) - self.unknown_penalty * len(self.unknown(question))
        if not scored or (support < self.min_support and not covered):
            return None
        texts = [sentences(hit.text) for hit in hits]
        parts = [(_clean(texts[p][i]), p + 1) for p, i in self._picked(scored, texts)]
        return Extract(" ".join(f"{text} [{n}]" for text, n in parts), tuple(parts), round(support, 4))

    def _picked(self, scored: Sequence[Scored], texts: list[list[str]]) -> list[tuple[int, int]]:
        """(passage, sentence) of the answer's sentences, in the order it reads them."""
        chosen = scored[: self.max_sentences]
        # Keep the best first; sentences after it read in the order of their passages.
        lead, rest = chosen[0], sorted(chosen[1:], key=lambda s: (s.passage, s.index))
        picked = [(lead.passage, lead.index), *((s.passage, s.index) for s in rest)]
        if lead.text.rstrip().endswith(":"):
            # "To start a return:" says nothing alone; its list is the answer.
            following = range(lead.index + 1, min(lead.index + 1 + self.max_list_items, len(texts[lead.passage])))
            picked = [(lead.passage, lead.index), *((lead.passage, i) for i in following)]
        else:
            # A list item reads with the sentence that introduces its list ("On request and free
            # of charge we can provide:" before "Braille versions ... (allow 10 business days)").
            intro = next((i for i in range(lead.index - 1, max(lead.index - 1 - self.max_list_items, -1), -1)
                          if texts[lead.passage][i].rstrip().endswith(":")), None)
            if intro is not None and (lead.passage, intro) not in picked:
                picked = [(lead.passage, intro), *picked]
        return picked

    def evidence(self, question: str, hits: Sequence[Hit], earlier: Sequence[str] = (), keep: int = 6) -> list[Hit]:
        """The passages cut to the sentences that bear on the question, for the model's prompt:
        the `keep` best of all, and each passage's best, in the order they stand, under the
        passage's "Title > Heading" line. Same passages, same numbers, so the markers the
        model writes still name the sources shown. A shorter prompt costs less prefill at
        every turn and less compute at every training step, and a small model picks the
        answer out of a few sentences more often than out of four whole chunks."""
        asked = f"{earlier[-1]} {question}" if earlier else question
        scored = self.score(asked, hits)
        texts = [sentences(hit.text) for hit in hits]
        chosen = {(s.passage, s.index) for s in scored[:keep]}
        for p in range(len(hits)):
            best = next((s for s in scored if s.passage == p), None)
            if best is not None:
                chosen.add((p, best.index))
        # A chosen sentence that introduces a list brings its items.
        chosen |= {(p, j) for p, i in list(chosen) if texts[p][i].rstrip().endswith(":")
                   for j in range(i + 1, min(i + 1 + self.max_list_items, len(texts[p])))}
        if scored:  # and whatever the extractive answer would quote, so the model can say it too
            chosen |= set(self._picked(scored, texts))
        out = []
        for p, hit in enumerate(hits):
            picked = [_clean(t) for i, t in enumerate(texts[p]) if (p, i) in chosen]
            head = hit.text.split("\n\n", 1)[0] if "\n\n" in hit.text else ""
            body = " ".join(picked) if picked else hit.text.split("\n\n", 1)[-1]
            out.append(replace(hit, text=f"{head}\n\n{body}" if head else body))
        return out

    def unknown(self, question: str) -> list[str]:
        """The question's nouns and adjectives that no chunk of the knowledge base holds."""
        if self.nouns is None or self.unknown_words is None or not self.unknown_penalty:
            return []
        return self.unknown_words(self.nouns(question))

    def score(self, question: str, hits: Sequence[Hit]) -> list[Scored]:
        """Every sentence of the passages but headings, best first."""
        x, candidates = features(question, hits, self.reranker, self.term_weights, self.scorer)
        if not candidates:
            return []
        support = x[:, _COSINE] + self.lexical_weight * x[:, _RARE] + self.rank_weight * x[:, _PASSAGE]
        order = self.ranker.score(x) if self.ranker else support + self.type_weight * x[:, _KIND]
        out = [Scored(float(o), float(s), c.text, c.passage, c.index)
               for o, s, c, heading in zip(order, support, candidates, x[:, _HEADING]) if not heading]
        out.sort(key=lambda s: -s.score)
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
    text = _LIST_MARK.sub("", _EMPHASIS.sub("", sentence).strip()).rstrip(",; ")
    return text if text[-1:] in ".!?:" else text + "."
