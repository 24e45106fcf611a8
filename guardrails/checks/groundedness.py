"""Groundedness: is each sentence of the answer supported by the retrieved passages?

Two signals, because embeddings alone cannot tell "30 days" from "60 days":
- support: each answer sentence is embedded and compared with every context
  sentence; the answer's score is its least supported sentence's best cosine
  similarity, so one invented claim is enough to fail it;
- numbers: every number in the answer (digits or number words) must appear in
  the context, the commonest way a small model invents a policy.
Below the threshold, or with an unsupported number, the answer is replaced by
a safe fallback that offers a human, and the turn is flagged for review.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult
from core.embeddings import Recent
from retrieval.rerank import sentences

FALLBACK = (
    "I'm not confident our help articles support an answer to this, so I won't guess. "
    "Would you like me to pass this conversation to a human colleague?"
)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "fourteen": "14", "fifteen": "15",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90", "hundred": "100",
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b")


def numbers(text: str) -> set[str]:
    lowered = text.lower()
    found = {n.replace(",", "") for n in _NUMBER.findall(lowered)}
    return found | {_NUMBER_WORDS[w] for w in _NUMBER_WORD.findall(lowered)}


_NOT_CLAIMS = re.compile(r"<[A-Z][A-Z0-9_]*>|\[\d+\]")  # placeholders and citation markers


def unsupported_numbers(answer: str, contexts: list[str]) -> set[str]:
    """Numbers in the answer that no context mentions. Placeholder indices (<PERSON_1>) and
    citation markers ([2]) don't count."""
    answer = _NOT_CLAIMS.sub(" ", answer)
    return numbers(answer) - set().union(*(numbers(c) for c in contexts))


# Saying "I don't know" or offering a human is what we want when context is thin: not a claim.
_HEDGE = re.compile(r"\b(don'?t|do not|doesn'?t) know\b|\bnot sure\b|\bcolleague\b|\bhuman\b", re.IGNORECASE)


def support_score(embedder, answer: str, contexts: list[str], evidence_vectors=None) -> float:
    """`evidence_vectors` (from `evidence_vectors()`) saves embedding the passages again when
    one answer is checked piece by piece."""
    answer = re.sub(r"\s*\[\d+\]", "", answer)  # citation markers are not part of a claim
    claims = [s for s in sentences("\n\n" + answer) if len(s.split()) >= 3 and not _HEDGE.search(s)]
    if not claims:
        return 1.0  # nothing asserted ("I don't know") cannot be ungrounded
    if evidence_vectors is None:
        evidence_vectors = evidence_vectors_for(embedder, contexts)
    if not len(evidence_vectors):
        return 0.0
    claim_vectors = np.asarray(embedder.embed(claims), dtype=np.float32)
    sims = claim_vectors @ evidence_vectors.T
    return float(sims.max(axis=1).min())


def evidence_vectors_for(embedder, contexts: list[str]) -> np.ndarray:
    evidence = [s for c in contexts for s in sentences(c)]
    return np.asarray(embedder.embed(evidence), dtype=np.float32) if evidence else np.zeros((0, 0), np.float32)


class GroundednessParams(Params):
    threshold: float = Field(0.45, ge=-1.0, le=1.0, description="Least-supported sentence's cosine similarity.")
    check_numbers: bool = True
    action: Literal["flag", "block"] = "flag"
    fallback: str = FALLBACK


@register
class GroundednessCheck:
    name: ClassVar[str] = "groundedness"
    stages: ClassVar[tuple[str, ...]] = ("output",)
    Params: ClassVar[type[GroundednessParams]] = GroundednessParams
    needs: ClassVar[tuple[str, ...]] = ("embedder",)

    def __init__(self, params: GroundednessParams, embedder) -> None:
        self.params = params
        self.embedder = embedder
        # The passages of the turns being checked: a streamed answer is checked once a sentence.
        self._evidence = Recent(size=8)

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        if not ctx.context_texts:  # fixed replies (no context, blocked) are not claims about documents
            return CheckResult(self.name, Action.ALLOW, (), {})
        contexts = list(ctx.context_texts)
        key = "\x00".join(contexts)
        evidence = self._evidence.get(key)
        if evidence is None:
            evidence = evidence_vectors_for(self.embedder, contexts)
            self._evidence.put(key, evidence)
        score = support_score(self.embedder, text, contexts, evidence)
        invented = unsupported_numbers(text, contexts) if self.params.check_numbers else set()
        scores = {"support": score, "unsupported_numbers": len(invented)}
        reasons = (["ungrounded"] if score < self.params.threshold else []) + \
                  (["ungrounded:numbers"] if invented else [])
        if not reasons:
            return CheckResult(self.name, Action.ALLOW, (), scores)
        return CheckResult(self.name, Action(self.params.action), tuple(reasons), scores, self.params.fallback,
                           replacement=True)
