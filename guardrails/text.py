"""Text normalisation shared by the rule-based and learned checks."""
from __future__ import annotations

import unicodedata


def normalise(text: str) -> str:
    """NFKC folds look-alike and full-width characters; zero-width characters are dropped; lower case."""
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    return folded.lower()
