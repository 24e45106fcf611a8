"""Topics the assistant must not discuss: by keyword phrases, and by embedding similarity.

Keywords catch the exact phrases; `examples` (example messages per topic,
written in the policy) catch paraphrases: a message whose embedding is within
`similarity` (cosine) of an example of a topic is on that topic, unless it is
as close to one of the `allowed` examples (ordinary support messages that share
the topic's words: "my doctor says I can't lift boxes, can you deliver
upstairs?"). That contrast lets the similarity bar sit low enough to catch
paraphrases without flagging everyday questions. A topic may also name `cues`:
words one of which a message must hold for a match by meaning to count. A
message is about competitors only when it names one (or "another shop"); at
cosine 0.4, "My only complaint with the sofa is the soft cushions" was close
enough to a competitor example without any.
"""
from __future__ import annotations

import re
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from guardrails.text import normalise
from guardrails.registry import CheckContext, Params, register
from guardrails.verdict import Action, CheckResult


class BannedTopicsParams(Params):
    action: Literal["flag", "block"] = "block"
    topics: dict[str, list[str]] = Field({}, description="Topic name -> keyword phrases.")
    examples: dict[str, list[str]] = Field({}, description="Topic name -> example messages, matched by meaning.")
    similarity: float = Field(0.5, ge=0.0, le=1.0, description="Cosine similarity to an example that counts.")
    allowed: list[str] = Field([], description="Ordinary messages near the topics; a closer match to one wins.")
    margin: float = Field(0.05, ge=0.0, le=1.0, description="How much closer a topic must be than `allowed`.")
    cues: dict[str, list[str]] = Field({}, description="Topic name -> words (a trailing * matches any ending), "
                                       "one of which a message must hold for a match by meaning to count.")

    @model_validator(mode="after")
    def _not_empty(self) -> "BannedTopicsParams":
        if not any(self.topics.values()) and not any(self.examples.values()):
            raise ValueError("give at least one topic with keywords or examples")
        empty = sorted({name for group in (self.topics, self.examples) for name, items in group.items() if not items})
        if empty:  # a topic listed with nothing to match would look guarded and catch nothing
            raise ValueError(f"topic {', '.join(empty)} has no keywords or examples")
        stray = sorted(set(self.cues) - set(self.examples))
        if stray:  # cues for a topic with no examples would silently do nothing
            raise ValueError(f"cues name topics without examples: {', '.join(stray)}")
        empty = sorted(name for name, words in self.cues.items() if not words)
        if empty:
            raise ValueError(f"topic {', '.join(empty)} has empty cues")
        return self


@register
class BannedTopicsCheck:
    name: ClassVar[str] = "banned_topics"
    stages: ClassVar[tuple[str, ...]] = ("input", "output")
    Params: ClassVar[type[BannedTopicsParams]] = BannedTopicsParams
    needs: ClassVar[tuple[str, ...]] = ("embedder",)

    def __init__(self, params: BannedTopicsParams, embedder=None) -> None:
        self.action = Action(params.action)
        self.similarity = params.similarity
        self.embedder = embedder if any(params.examples.values()) else None
        self.examples = {
            topic: np.asarray(embedder.embed(texts), dtype=np.float32)
            for topic, texts in params.examples.items() if texts and self.embedder is not None
        }
        self.allowed = (np.asarray(embedder.embed(params.allowed), dtype=np.float32)
                        if params.allowed and self.embedder is not None else None)
        self.margin = params.margin
        self.cues = {topic: _phrases(words) for topic, words in params.cues.items()}
        # Whole-word phrase match, so "vote" does not fire on "devoted".
        self.topics = {
            topic: re.compile(r"\b(" + "|".join(re.escape(k.lower()) for k in words) + r")\b")
            for topic, words in params.topics.items() if words
        }

    def check(self, text: str, ctx: CheckContext) -> CheckResult:
        norm = normalise(text)
        found = [topic for topic, rule in self.topics.items() if rule.search(norm)]
        scores: dict[str, float] = {}
        if self.examples:
            # Input stage: the message as typed (shared embedding with the other input checks);
            # output stage: the answer (no `original` there).
            [vector] = self.embedder.embed([ctx.original or text])
            query = np.asarray(vector, dtype=np.float32)
            bar = self.similarity
            if self.allowed is not None:
                scores["sim_allowed"] = allowed = float((self.allowed @ query).max())
                bar = max(bar, allowed + self.margin)
            for topic, vectors in self.examples.items():
                scores[f"sim_{topic}"] = best = float((vectors @ query).max())
                cued = topic not in self.cues or self.cues[topic].search(norm) is not None
                if best >= bar and cued and topic not in found:
                    found.append(topic)
        scores["topics"] = len(found)
        if found:
            return CheckResult(self.name, self.action, tuple(f"banned_topic:{t}" for t in found), scores)
        return CheckResult(self.name, Action.ALLOW, (), scores)


def _phrases(words: list[str]) -> re.Pattern:
    """Whole words or phrases, lower case; "diagnos*" matches "diagnose" and "diagnosis"."""
    parts = [re.escape(w.lower().rstrip("*")) + (r"\w*" if w.endswith("*") else r"\b") for w in words]
    return re.compile(r"\b(" + "|".join(parts) + ")")
