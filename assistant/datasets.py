"""The dataset service: training rows from the exchange log, and synthetic rows from the
knowledge base so a new install can train its first adapter before any feedback exists."""
from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from assistant.actor import Actor, require
from assistant.audit import AuditLog
from core.errors import BadInput
from assistant.feedback import FeedbackService
from assistant.prompt import build_messages
from assistant.review import ReviewService
from assistant.store import Store
from finetune import datasets as ds
from retrieval.catalog import Catalog
from retrieval.rerank import sentences
from retrieval.search import Retriever
from retrieval.store import Hit, VectorStore

log = logging.getLogger(__name__)
SYNTHETIC = "synthetic.jsonl"
# Distractor passages only need to be near the question: the hybrid search finds them without
# reranking every chunk's questions with the sentence scorer.
DISTRACTOR_SEARCH = "hybrid"
# What the system prompt asks for when the passages do not answer.
ABSTAIN_ANSWER = ("I don't know: the help articles I was given do not cover this. "
                  "Would you like me to pass this conversation to a human colleague?")

# Ways agents ask about a topic; `{t}` is a heading or an FAQ question's topic.
HEADING_QUESTIONS = (
    "What do our articles say about {t}?",
    "A customer is asking about {t}. What should I tell them?",
    "{t} - how does that work?",
)
FAQ_QUESTIONS = ("{q}", "Customer asks: {q}", "quick one - {q_lower}")


class DatasetService:
    def __init__(self, engine, store: Store, feedback: FeedbackService, review: ReviewService, folder: Path,
                 find_pii: Callable[[str, bool, str], list[str]], vectors: Callable[[], VectorStore],
                 catalog: Catalog, retriever: Callable[[], Retriever], audit: AuditLog | None = None,
                 evidence: Callable[[str, list[Hit]], list[Hit]] | None = None) -> None:
        """`evidence(question, hits)`: the passages as the served prompt shows them (cut to the
        sentences that bear on the question); None: whole, as they are retrieved."""
        self.engine = engine
        self.audit = audit
        self.store = store
        self.feedback = feedback
        self.review = review
        self.folder = folder
        self.find_pii = find_pii
        self._vectors = vectors
        self.catalog = catalog
        self._retriever = retriever
        self._evidence = evidence or (lambda question, hits: list(hits))

    def logged_rows(self) -> list[ds.Row]:
        """Rows from every exchange that has feedback or a review decision."""
        decided = {d["exchange_id"]: d for d in self.review.decided()}
        rows: list[ds.Row] = []
        for exchange_id in sorted(set(decided) | self.feedback.exchange_ids()):
            record = self.store.exchange(exchange_id)
            if record is not None:
                rows += ds.rows_from_exchange(record, self.feedback.for_exchange(exchange_id), decided.get(exchange_id))
        return rows

    def synthetic_rows(self) -> list[ds.Row]:
        path = self.folder / SYNTHETIC
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            rows.append(ds.Row("sft", item["lineage"]["conversation"],
                               {"prompt": item["prompt"], "completion": item["completion"]}, item["lineage"]))
        return rows

    def build(self, actor: Actor) -> ds.Built:
        require(actor, "admin")
        rows = self.logged_rows() + self.synthetic_rows()
        if not rows:
            raise BadInput("nothing to build a dataset from yet: no rated or reviewed turns, and no synthetic "
                           "rows (helpdesk dataset synthesize)")
        built = ds.build(rows, self.folder, self.find_pii, self.engine,
                         actor.id)
        log.info("%s built dataset %s: %s", actor.id, built.version, built.rows)
        if self.audit is not None:
            self.audit.record(actor, "dataset_built", built.version, rows=built.rows)
        return built

    def synthesize(self, actor: Actor, distractors: int = 3, seed: int = 0, abstain_share: float = 0.2) -> dict:
        """Grounded question/answer rows from the live chunks: questions from headings and FAQ
        questions (and rephrasings of them), the answer from the chunk's own sentences (as the
        served prompt shows them), the chunk among distractor passages the retriever finds, at
        a random place, as at serving time. For `abstain_share` of the chunks, one more row asks the
        question beside passages from other articles only, and the answer says so and offers a
        human: without them an adapter learns that every question has its answer at hand."""
        require(actor, "admin")
        rng = random.Random(seed)
        chunks = [c for c in self._vectors().chunks()]
        live = self.catalog.live([c.chunk_id for c in chunks])
        chunks = sorted((c for c in chunks if c.chunk_id in live), key=lambda c: c.chunk_id)
        retriever = self._retriever()
        out = []
        for chunk in chunks:
            answer_sentences = sentences(chunk.text)[:2]
            if not answer_sentences or len(" ".join(answer_sentences)) < 40:
                continue  # a heading or a fragment: nothing to answer with
            asked = questions_for(chunk)
            lineage = {"origin": "synthetic", "chunk_id": chunk.chunk_id, "source": chunk.source,
                       "conversation": f"synthetic:{chunk.chunk_id}"}
            if asked and rng.random() < abstain_share:
                elsewhere = [h for h in retriever.search(asked[0], distractors * 3, DISTRACTOR_SEARCH)
                             if h.source != chunk.source]
                if elsewhere:
                    shown = self._evidence(asked[0], elsewhere[:distractors])
                    out.append({"prompt": build_messages(asked[0], shown),
                                "completion": ds.assistant_turn(ABSTAIN_ANSWER), "lineage": lineage | {"abstain": True}})
            # The answer is the chunk's opening sentences, so the chunk shows only those: the
            # prompt's cut may then keep them both or one, never other sentences of it.
            head = chunk.text.split("\n\n", 1)[0] + "\n\n" if "\n\n" in chunk.text else ""
            # (An id of its own: sentence vectors are cached by chunk id.)
            answering = replace(chunk, chunk_id=f"{chunk.chunk_id}#opening", text=head + " ".join(answer_sentences))
            for question in asked:
                hits = [h for h in retriever.search(question, distractors + 1, DISTRACTOR_SEARCH)
                        if h.chunk_id != chunk.chunk_id]
                passages = hits[:distractors]
                at = rng.randint(0, len(passages))
                passages.insert(at, answering)
                shown = self._evidence(question, passages)
                answer = " ".join(_plain(s) for s in sentences(shown[at].text))
                out.append({"prompt": build_messages(question, shown), "completion": ds.assistant_turn(answer),
                            "lineage": lineage})
        leaks = ds.scan_rows([ds.Row("sft", "", {"prompt": r["prompt"], "completion": r["completion"]}, r["lineage"])
                              for r in out], self.find_pii)
        if leaks:
            raise ds.PiiInDataset(f"raw personal data in {len(leaks)} places, nothing written: {leaks[:5]}")
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{SYNTHETIC}.partial"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out), encoding="utf-8")
        tmp.replace(self.folder / SYNTHETIC)
        digest = hashlib.sha256((self.folder / SYNTHETIC).read_bytes()).hexdigest()[:12]
        log.info("%s synthesized %d rows from %d chunks", actor.id, len(out), len(chunks))
        if self.audit is not None:
            self.audit.record(actor, "dataset_synthesized", digest, rows=len(out), chunks=len(chunks))
        return {"rows": len(out), "chunks": len(chunks), "path": str(self.folder / SYNTHETIC), "hash": digest}


def questions_for(chunk: Hit) -> list[str]:
    """Questions a chunk answers: its FAQ question, or its heading, each asked a few ways."""
    first = chunk.text.split("\n\n", 1)[-1].strip()
    faq = re.match(r"^(?:Q:\s*)?([^\n?]{8,200}\?)", first)
    if faq:
        q = faq.group(1).strip()
        return [t.format(q=q, q_lower=q[0].lower() + q[1:]) for t in FAQ_QUESTIONS]
    topic = (chunk.heading or "").split(">")[-1].strip()
    if len(topic) < 4 or topic.lower() == (chunk.title or "").lower():
        return []
    return [t.format(t=topic.lower()) for t in HEADING_QUESTIONS]


def _plain(sentence: str) -> str:
    """A sentence as an answer: Markdown emphasis dropped, ending in a full stop."""
    s = re.sub(r"[*_`]+", "", sentence).strip().rstrip(",; ")
    return s if s.endswith((".", "!", "?")) else s + "."
