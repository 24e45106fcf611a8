"""Presidio's phone recognizer, asking each region only about text that can hold one of its numbers.

The stock recognizer runs libphonenumber's matcher once per region (eight by default), and
each run parses every digit block it finds. Help articles are full of short numbers (a
price, a year, a product code), so that was 40% of the time redacting a document chunk
took. A valid number of a region has at least that region's shortest national number in
digits, or six when written with a dialling prefix, so a region whose minimum is longer
than the text's longest digit run is not asked; text with a `+` asks every region. What the
stock recognizer finds is still found (`tests/test_phone.py` compares the two).
"""
from __future__ import annotations

import re

import phonenumbers
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

# Digits joined by at most four other characters: never shorter than the candidates the
# matcher reads (digit blocks joined by up to four punctuation marks).
_DIGIT_RUN = re.compile(r"\d(?:\D{0,4}\d)*")
# Fewest digits of a number dialled with an international prefix: the prefix (1 digit or
# more), the country code (1 or more) and the national number (4 or more).
_FEWEST_DIALLED_ABROAD = 6
# The shortest national number of any region libphonenumber knows (Germany, Austria, ...):
# a number written with `+` can belong to any of them.
_SHORTEST_ANYWHERE = 4


class GatedPhoneRecognizer(PhoneRecognizer):
    def __init__(self, **kwargs) -> None:
        super().__init__(name="PhoneRecognizer", **kwargs)
        self.fewest_digits = {
            region: min(min(_possible_lengths(region), default=1), _FEWEST_DIALLED_ABROAD)
            for region in self.supported_regions
        }

    def analyze(self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
                ) -> list[RecognizerResult]:
        longest = max((sum(ch.isdigit() for ch in run) for run in _DIGIT_RUN.findall(text)), default=0)
        everywhere = "+" in text or "＋" in text
        results = []
        for region, fewest in self.fewest_digits.items():
            if longest < fewest and not (everywhere and longest >= _SHORTEST_ANYWHERE):
                continue
            for match in phonenumbers.PhoneNumberMatcher(text, region, leniency=self.leniency):
                try:  # as the stock recognizer: name the number's own region where it parses alone
                    found_in = phonenumbers.region_code_for_number(phonenumbers.parse(text[match.start:match.end]))
                except phonenumbers.NumberParseException:
                    found_in = region
                results.append(self._get_recognizer_result(match, text, found_in, nlp_artifacts))
        return EntityRecognizer.remove_duplicates(results)


def _possible_lengths(region: str) -> tuple[int, ...]:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    return tuple(metadata.general_desc.possible_length) if metadata else ()
