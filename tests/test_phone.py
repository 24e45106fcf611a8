"""The digit-gated phone recognizer finds exactly what Presidio's stock one finds."""
from __future__ import annotations

import random

from faker import Faker
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

from guardrails.phone import GatedPhoneRecognizer

LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "he_IL", "en_IN", "en_CA", "pt_BR", "it_IT", "nl_NL", "ja_JP",
           "es_ES", "de_AT", "pl_PL"]
FRAMES = ["Call {} after five.", "Tel: {}", "{}", "Our line ({}) is open 9-5, 7 days a week.",
          "Order 4471 shipped; phone {} if it is late", "Returns within 30 days, since 2024: {}."]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    fakers = {loc: Faker(loc) for loc in LOCALES}
    for faker in fakers.values():
        faker.seed_instance(seed)
    texts = []
    for i in range(n):
        kind = i % 4
        if kind == 0:  # a real-looking national number from some country
            number = fakers[rng.choice(LOCALES)].phone_number()
        elif kind == 1:  # international: +CC or a dialling prefix, short and long national parts
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 11)))
            number = rng.choice(["+", "00 ", "011 ", "+", "0"]) + rng.choice(["1", "44", "49", "33", "683", "43", "7",
                                                                              "972", "91", "55"]) + " " + digits
        elif kind == 2:  # digit blocks joined by the punctuation numbers are written with
            blocks = ["".join(rng.choice("0123456789") for _ in range(rng.randint(1, 5)))
                      for _ in range(rng.randint(1, 4))]
            number = "".join(b + rng.choice(["-", " ", ".", "/", ") ", " - ", ""]) for b in blocks).strip()
        else:  # the short numbers help articles are full of
            number = rng.choice(["code-5123-7", "$25.99", "12 June 2025", "v2.3.1", "SKU 88-10", "ext. 204",
                                 "1-800-FLOWERS", "555-0199", "0800 123", "112"])
        texts.append(rng.choice(FRAMES).format(number))
    return texts


def test_gated_phone_recognizer_finds_what_the_stock_one_finds():
    stock, gated = PhoneRecognizer(), GatedPhoneRecognizer()
    texts = _texts(1200)
    found = 0
    for text in texts:
        expected = {(r.start, r.end, r.entity_type) for r in stock.analyze(text, ["PHONE_NUMBER"])}
        got = {(r.start, r.end, r.entity_type) for r in gated.analyze(text, ["PHONE_NUMBER"])}
        assert got == expected, text
        found += bool(expected)
    assert found > 300  # the set really exercises numbers, not only text without any


def test_gated_phone_recognizer_skips_regions_short_numbers_cannot_belong_to():
    gated = GatedPhoneRecognizer()
    assert gated.fewest_digits["US"] == 6 and gated.fewest_digits["DE"] == 4
    assert gated.analyze("returns within 30 days", ["PHONE_NUMBER"]) == []
    assert [(r.start, r.end) for r in gated.analyze("call 415-555-0132 today", ["PHONE_NUMBER"])] == [(5, 17)]
