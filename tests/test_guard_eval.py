"""The guardrail evaluation: generated PII sets carry correct gold spans, and metrics count misses."""
from __future__ import annotations

from guardrails.evaluate import TEMPLATES, generate_pii_set, pii_metrics


def test_generated_sentences_have_exact_gold_spans():
    rows = generate_pii_set(len(TEMPLATES) * 2, seed=3)
    assert len(rows) == len(TEMPLATES) * 2
    assert generate_pii_set(5, seed=3) == rows[:5], "seeded: runs repeat"
    for row in rows:
        assert row["spans"] and "{" not in row["text"]
        for start, end, kind in row["spans"]:
            value = row["text"][start:end]
            assert value.strip() == value and value
            if kind == "EMAIL_ADDRESS":
                assert "@" in value
            if kind == "ORDER_NUMBER":
                assert value.startswith("ORD-")


def test_metrics_count_misses_and_false_alarms():
    from guardrails.verdict import Entity

    rows = [{"text": "Mail a@example.com now", "spans": [(5, 18, "EMAIL_ADDRESS")]}]

    class Blind:
        def analyze(self, text):
            return []

    class Wrong:
        def analyze(self, text):
            return [Entity("PERSON", 0, 4, 0.9), Entity("EMAIL_ADDRESS", 5, 18, 1.0)]

    blind = pii_metrics(Blind(), rows)
    assert blind["EMAIL_ADDRESS"]["recall"] == 0.0 and blind["overall"]["f2"] == 0.0
    wrong = pii_metrics(Wrong(), rows)
    assert wrong["EMAIL_ADDRESS"]["recall"] == 1.0 and wrong["PERSON"]["precision"] == 0.0
    assert wrong["overall"]["precision"] == 0.5


def test_shipped_policy_meets_pii_targets_on_a_generated_set(services):
    report = pii_metrics(services.guard.redactor, generate_pii_set(240, seed=7))
    for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "ORDER_NUMBER", "CUSTOMER_ID"):
        assert report[kind]["recall"] >= 0.95, (kind, report[kind])
    assert report["PERSON"]["recall"] >= 0.85
    assert report["overall"]["precision"] >= 0.85
