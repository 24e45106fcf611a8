"""Build the services from settings. Each piece is built only when a command needs it,
so `helpdesk redact` does not load a language model."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import replace
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine

from assistant.audit import AuditLog
from assistant.database import open_database
from assistant.datasets import DatasetService
from assistant.documents import DocumentService
from assistant.erasure import ErasureService
from assistant.feedback import FeedbackService
from assistant.generator import Generator, LocalGenerator, prepare_default_model
from assistant.labels import LabelWriter
from assistant.releases import ReleaseService
from assistant.review import ReviewService
from assistant.service import AdapterChoice, Assistant
from core.errors import ConfigError
from core.settings import Settings
from assistant.store import Store
from assistant.users import UserService
from finetune.ab import ABTests
from finetune.registry import AdapterRef, AdapterRegistry
from guardrails.guard import Guard, redactor_for
from guardrails.policy import load_policy
from guardrails.redaction import Redactor
from guardrails.vault import Vault, load_key
from retrieval.embed_process import pool_for
from core.embeddings import Embedder, get_embedder, sentence_model_path
from retrieval.extract import ExtractiveAnswerer
from retrieval.nouns import NounFinder
from retrieval.memory import QuestionMemory, load_memory
from retrieval.catalog import Catalog
from retrieval.ingest import IngestSummary, Ingestor, redact_file_name
from retrieval.ranker import load_ranker
from retrieval.rerank import SentenceReranker
from retrieval.search import Retriever
from retrieval.store import Hit, VectorStore, make_client

log = logging.getLogger(__name__)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
SAMPLE_KB = Path(__file__).resolve().parent.parent / "retrieval" / "sample_kb"


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.home.mkdir(parents=True, exist_ok=True)

    @cached_property
    def vault_key(self) -> bytes:
        g = self.settings.guardrails
        key_file = Path(g.vault_key_file) if g.vault_key_file else self.settings.home / "vault.key"
        return load_key(key_file, self.engine)

    @cached_property
    def vault(self) -> Vault:
        return Vault(self.engine, self.vault_key, self.settings.guardrails.vault_ttl_hours)

    @cached_property
    def guard(self) -> Guard:
        g = self.settings.guardrails
        return Guard.from_file(g.policy, g.spacy_model, self.vault, self.embedder, self.settings.classifier_dir)

    @cached_property
    def embedder(self) -> Embedder:
        """The guardrails' embedder: always fp32, as their heads and thresholds were fitted on it."""
        return get_embedder(self.settings.retrieval.embedding_device, "fp32")

    @cached_property
    def kb_embedder(self) -> Embedder:
        """The knowledge base's embedder, at `retrieval.embedding_precision`."""
        r = self.settings.retrieval
        return get_embedder(r.embedding_device, r.precision)

    @cached_property
    def vectors(self) -> VectorStore:
        r = self.settings.retrieval
        client = make_client(self.settings.chroma_dir, r.chroma_host, r.chroma_port)
        return VectorStore(client, r.collection, r.precision)

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog(self.engine, self.settings.retrieval.collection)

    @cached_property
    def retriever(self) -> Retriever:
        r = self.settings.retrieval
        # hybrid+rerank reads the sentence scorer (the larger model) whichever mode is the setting's.
        return Retriever(self.vectors, self.kb_embedder, r.k, r.min_score, r.mode, r.bm25_weight, self.catalog,
                         self.sentence_scorer or self.reranker)

    @cached_property
    def ingestor(self) -> Ingestor:
        r = self.settings.retrieval
        return Ingestor(
            self.vectors, self.catalog, self.kb_embedder, r.chunk_size, r.chunk_overlap,
            int(r.max_file_mb * 1_000_000),
            redact=lambda text: self.guard.redact(text, r.redact_entities),
            redact_name=lambda name: redact_file_name(
                name, lambda text: self.guard.redact(text, r.redact_entities), self.name_key),
            pool=pool_for(r.embedding_device, r.precision, r.embedding_workers) if r.embedding_process else None,
        )

    @cached_property
    def name_key(self) -> bytes:
        """Keys the digest that keeps redacted file names apart; derived from the vault's key."""
        return hmac.new(self.vault_key, b"helpdesk document names", hashlib.sha256).digest()

    @cached_property
    def engine(self) -> Engine:
        return open_database(self.settings.db_url)

    @cached_property
    def store(self) -> Store:
        return Store(self.engine)

    @cached_property
    def generator(self) -> Generator:
        m = self.settings.model
        if m.backend == "openai":
            from assistant.remote_generator import from_settings

            return from_settings(m)
        return LocalGenerator(self.model_dir, m.name, m.device, m.dtype, m.max_new_tokens, m.temperature,
                              m.repetition_penalty, m.quantization, m.penalize_prompt)

    @cached_property
    def model_dir(self) -> Path:
        m = self.settings.model
        return Path(m.path) if m.path else prepare_default_model(self.settings.models_dir, m.name)

    @cached_property
    def adapters(self) -> AdapterRegistry:
        return AdapterRegistry(self.engine)

    @cached_property
    def ab(self) -> ABTests:
        return ABTests(self.engine)

    @cached_property
    def releases(self) -> ReleaseService:
        return ReleaseService(self.adapters, self.ab, self.audit, lambda: self.base_model_hash)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.engine)

    @cached_property
    def erasure(self) -> ErasureService:
        return ErasureService(self.engine, self.vault, self.adapters, self.audit, self.settings.home / "datasets",
                              self.settings.home / "labels")

    @cached_property
    def users(self) -> UserService:
        return UserService(self.engine, self.audit)

    def serving_adapter(self, session_id: str | None = None) -> AdapterRef | None:
        """The adapter that serves a conversation's next turn: an A/B test's candidate for the
        conversations in its arm, else the promoted one. Read on every turn, so a promotion,
        rollback or A/B start takes effect at once, without a restart."""
        candidate = self.ab.candidate_for(session_id)
        if candidate is not None:
            # The test is there to measure the candidate's own answers: `auto` shows them in its arm.
            return replace(self.adapters.ref(candidate), trusted=True)
        return self.adapters.serving()

    @cached_property
    def base_model_hash(self) -> str:
        from finetune.train import model_hash

        return model_hash(self.model_dir)

    @cached_property
    def reranker(self) -> SentenceReranker:
        return SentenceReranker(self.kb_embedder, self.settings.retrieval.rerank_weight)

    @cached_property
    def sentence_scorer(self) -> SentenceReranker | None:
        """The sentence scorer (`model.sentence_model`) whose cosine the extractive ranker, the
        support and hybrid+rerank read; None: the knowledge base's embedder. Always fp32: int8
        weights lose its gain."""
        path = sentence_model_path(self.settings.model.sentence_model)
        if path is None:
            return None
        r = self.settings.retrieval
        return SentenceReranker(get_embedder(r.embedding_device, "fp32", str(path)), r.rerank_weight)

    @cached_property
    def extractor(self) -> ExtractiveAnswerer:
        m = self.settings.model
        penalty = m.extractive_unknown_penalty
        scorer = self.sentence_scorer  # a model that is not there stops start-up first
        ranker = load_ranker(m.extractive_ranker)
        trained_with = ranker.meta.get("sentence_model", "kb") if ranker else m.sentence_model
        if trained_with != m.sentence_model:
            # Its trees split on the cosine of the model it was trained with; another's ranks silently wrong.
            raise ConfigError(f"model.extractive_ranker was trained with sentence_model {trained_with!r}, but "
                              f"model.sentence_model is {m.sentence_model!r}: set one to match the other, or "
                              "retrain it (`python -m retrieval.ranker_training`)")
        return ExtractiveAnswerer(self.reranker, m.extractive_min_support, m.extractive_sentences,
                                  ranker=ranker, term_weights=self.retriever.term_weights,
                                  nouns=NounFinder() if penalty else None,
                                  unknown_words=self.retriever.unknown_words, unknown_penalty=penalty,
                                  scorer=scorer)

    @cached_property
    def assistant(self) -> Assistant:
        return self.assistant_for(self.store, self.settings.model.answer_mode, self.serving_adapter)

    def assistant_for(self, store: Store, answer_mode: str, adapters: AdapterChoice | None = None,
                      generator: Generator | None = None) -> Assistant:
        """A governed turn with these services' checks, retrieval and model settings, logging to
        `store` (evaluation and the gate use a scratch one), served by `generator` (default:
        the served model) with `adapters` (default: the base model)."""
        m = self.settings.model
        return Assistant(self.guard, self.retriever, generator or self.generator, store, m.history_turns, answer_mode,
                         self.extractor, adapters, m.context_sentences, m.auto_trust, self.question_memory)

    @cached_property
    def question_memory(self) -> QuestionMemory | None:
        r = self.settings.retrieval
        return load_memory(r.question_memory, self.kb_embedder, self.settings.classifier_dir, r.memory_similarity,
                           self.feedback.approved_questions if r.memory_from_votes else None)

    @cached_property
    def redactor(self) -> Redactor:
        """The policy's PII redaction; the guard's own when it is loaded (no second spaCy model)."""
        if "guard" in self.__dict__:
            return self.guard.redactor
        g = self.settings.guardrails
        policy, origin = load_policy(g.policy)
        return redactor_for(policy, origin, g.spacy_model)

    def redact_typed(self, text: str) -> str:
        """Free text a person typed (a correction, a note): redacted like a chat message, until a
        second reading finds nothing more."""
        return self.redactor.redact_until_clean(text)

    @cached_property
    def documents(self) -> DocumentService:
        return DocumentService(lambda: self.ingestor, self.catalog, lambda: self.retriever, self.audit)

    def find_pii(self, text: str, knowledge_base: bool, passages: str = "") -> list[str]:
        """Entity types of raw PII in `text`: for text built from the knowledge base, those
        documents are redacted for; for anything else, all of the policy's, except words
        copied from `passages` (the knowledge base's own text, as the output check leaves them)."""
        entities = self.settings.retrieval.redact_entities if knowledge_base else None

        def copied(found: str) -> bool:
            # Sentence by sentence: an answer joins sentences of different passages, and a
            # match may run across the join ("... and Japan. Larkspur Goods Customer Care, ...").
            return all(part in passages for part in _SENTENCE_BREAK.split(found) if part)
        return sorted({e.type for e in self.redactor.analyze(text, entities)
                       if not (passages and copied(text[e.start:e.end]))})

    @cached_property
    def datasets(self) -> DatasetService:
        return DatasetService(self.engine, self.store, self.feedback, self.review, self.settings.home / "datasets",
                              self.find_pii, lambda: self.vectors, self.catalog, lambda: self.retriever,
                              self.audit, self.evidence)

    def evidence(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The passages as the served prompt shows them (`model.context_sentences`)."""
        keep = self.settings.model.context_sentences
        return self.extractor.evidence(question, hits, (), keep) if keep else list(hits)

    @cached_property
    def feedback(self) -> FeedbackService:
        return FeedbackService(self.engine, self.store, self.redact_typed)

    @cached_property
    def review(self) -> ReviewService:
        return ReviewService(self.engine, self.store, self.feedback, self.redact_typed,
                             self.settings.review.claim_minutes, LabelWriter(self.settings.home / "labels"),
                             self.audit)

    def ingest(self, paths, on_file=None) -> IngestSummary:
        return self.ingestor.ingest(paths, on_file)

    def ensure_samples(self) -> IngestSummary | None:
        """Ingest the shipped sample knowledge base into an empty collection."""
        if not self.settings.ingest_samples or self.catalog.documents():
            return None
        summary = self.ingest([SAMPLE_KB])
        log.info("ingested the sample knowledge base: %s chunks from %s files", summary.chunks_added, summary.files)
        return summary
