"""Guardrail evaluation: PII detection, injection detection, groundedness and sentiment.

PII is measured on sentences generated from customer-service templates filled
with Faker values (seeded, so runs repeat), with the gold span of every value
known. The other sets are the hand-labelled files in `guardrails/data/`. The
learned heads are scored out-of-fold (5-fold cross-validation): no row is
scored by a head that saw it.
"""
from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from guardrails.heads import DATA, cross_val_probs, load_labelled
from guardrails.pii_eval import HELDOUT, evaluate_pii

# {SLOT} is filled by a value whose gold entity is the slot's name.
TEMPLATES = [
    "Hi, this is {PERSON}, my order {ORDER_NUMBER} hasn't arrived yet.",
    "Please update the email on my account to {EMAIL_ADDRESS}.",
    "You can reach me on {PHONE_NUMBER} after 5pm.",
    "I was charged twice on my card {CREDIT_CARD}, can you refund one?",
    "My name is {PERSON} and I live in {LOCATION}.",
    "Customer {CUSTOMER_ID} says the parcel was left at the wrong door.",
    "Refund to IBAN {IBAN_CODE} please, the card was cancelled.",
    "Login attempts came from {IP_ADDRESS}, was that you?",
    "For the credit check they gave SSN {US_SSN}.",
    "{PERSON} called about order {ORDER_NUMBER}; callback number {PHONE_NUMBER}.",
    "Send the invoice to {EMAIL_ADDRESS} and mark it for {PERSON}.",
    "The delivery to {LOCATION} failed twice, customer is {PERSON}.",
    "Date of birth {DATE_OF_BIRTH}, account {CUSTOMER_ID}, wants the data export.",
    "She was born on {DATE_OF_BIRTH} and the account is under {EMAIL_ADDRESS}.",
    "Can you check ORD number {ORDER_NUMBER} for {PERSON}?",
    "Card ending in {CREDIT_CARD} was declined at checkout.",
    "My husband {PERSON} placed the order, his phone is {PHONE_NUMBER}.",
    "Please cancel {ORDER_NUMBER}, I ordered the wrong size.",
    "The customer at {EMAIL_ADDRESS} never got the password reset link.",
    "Our office moved to {LOCATION}, please update the shipping address.",
    "Account {CUSTOMER_ID} is locked after too many tries from {IP_ADDRESS}.",
    "Hello, {PERSON} here. My DOB is {DATE_OF_BIRTH} for verification.",
    "Transfer the store credit to {IBAN_CODE} in the name of {PERSON}.",
    "I need a receipt for order {ORDER_NUMBER} sent to {EMAIL_ADDRESS}.",
    "Why was my card {CREDIT_CARD} charged before shipping?",
    "Tell {PERSON} the replacement kettle ships Monday.",
    "The courier said {LOCATION} is outside the delivery zone.",
    "Phone {PHONE_NUMBER} keeps getting marketing texts, please stop them.",
    "Is {EMAIL_ADDRESS} still the contact for the business account?",
    "The tax form needs my SSN {US_SSN} and birthday {DATE_OF_BIRTH}.",
]


US_AREA_CODES = [201, 206, 212, 213, 214, 303, 305, 312, 404, 408, 415, 469, 480, 503, 510, 512, 602, 617, 646,
                 702, 713, 718, 720, 773, 818, 917, 919]


def _value(fake, kind: str, rng: random.Random) -> str:
    if kind == "PERSON":
        return fake.name()
    if kind == "EMAIL_ADDRESS":
        return fake.email()
    if kind == "PHONE_NUMBER":
        # A dialable US number: a real area code, an exchange starting 2-9.
        area = rng.choice(US_AREA_CODES)
        exchange, line = rng.randrange(200, 1000), rng.randrange(10_000)
        return rng.choice([f"{area}-{exchange}-{line:04d}", f"({area}) {exchange}-{line:04d}",
                           f"+1 {area} {exchange} {line:04d}", f"{area}.{exchange}.{line:04d}"])
    if kind == "CREDIT_CARD":
        return fake.credit_card_number(card_type=rng.choice(["visa16", "mastercard", "amex", "discover"]))
    if kind == "IBAN_CODE":
        return fake.iban()
    if kind == "IP_ADDRESS":
        return fake.ipv4_public()
    if kind == "US_SSN":
        return fake.ssn()
    if kind == "LOCATION":
        return rng.choice([fake.city(), fake.state(), fake.country()])
    if kind == "ORDER_NUMBER":
        return f"ORD-{rng.randrange(10**6):06d}"
    if kind == "CUSTOMER_ID":
        return "LG-" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8))
    if kind == "DATE_OF_BIRTH":
        return fake.date_of_birth(minimum_age=18, maximum_age=90).strftime(rng.choice(["%m/%d/%Y", "%B %d, %Y"]))
    raise ValueError(kind)


def generate_pii_set(n: int, seed: int = 0) -> list[dict]:
    """Sentences with gold spans: [{"text", "spans": [(start, end, type)]}]."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        text, spans = "", []
        for piece in template.replace("}", "{").split("{"):
            if piece.isupper() and piece.replace("_", "").isalpha():
                value = _value(fake, piece, rng)
                spans.append((len(text), len(text) + len(value), piece))
                text += value
            else:
                text += piece
        rows.append({"text": text, "spans": spans})
    return rows


def pii_metrics(redactor, rows: list[dict]) -> dict:
    """Per-entity precision, recall and F2 (recall counts double: a missed value is a leak)."""
    tp_pred: dict[str, int] = defaultdict(int)
    n_pred: dict[str, int] = defaultdict(int)
    tp_gold: dict[str, int] = defaultdict(int)
    n_gold: dict[str, int] = defaultdict(int)
    for row in rows:
        found = redactor.analyze(row["text"])
        gold = row["spans"]
        for ent in found:
            n_pred[ent.type] += 1
            tp_pred[ent.type] += any(g[2] == ent.type and ent.start < g[1] and g[0] < ent.end for g in gold)
        for start, end, kind in gold:
            n_gold[kind] += 1
            tp_gold[kind] += any(e.type == kind and e.start < end and start < e.end for e in found)
    report = {}
    for kind in sorted(set(n_gold) | set(n_pred)):
        p = tp_pred[kind] / n_pred[kind] if n_pred[kind] else 0.0
        r = tp_gold[kind] / n_gold[kind] if n_gold[kind] else 0.0
        report[kind] = {"precision": round(p, 3), "recall": round(r, 3), "f2": round(_f2(p, r), 3),
                        "gold": n_gold[kind], "predicted": n_pred[kind]}
    p_all = sum(tp_pred.values()) / max(1, sum(n_pred.values()))
    r_all = sum(tp_gold.values()) / max(1, sum(n_gold.values()))
    report["overall"] = {"precision": round(p_all, 3), "recall": round(r_all, 3), "f2": round(_f2(p_all, r_all), 3),
                         "sentences": len(rows)}
    return report


def _f2(p: float, r: float) -> float:
    return 5 * p * r / (4 * p + r) if p + r else 0.0


# Words attacks use that ordinary support messages use too ("ignore my last email").
TRIGGER_WORDS = re.compile(
    r"\b(ignore|disregard|override|forget|previous|instructions?|system|prompt|rules?|admin|developer|pretend|"
    r"act as|role|mode|repeat|print|translate|reveal|bypass|unlock|jailbreak|hack|code|secret|password|token|"
    r"debug|config)", re.IGNORECASE)


def _rates(detected: np.ndarray, attack: np.ndarray) -> dict:
    return {"tpr": round(float(detected[attack].mean()), 3), "fpr": round(float(detected[~attack].mean()), 3)}


def _nanoguard_rates(rows: list[dict], attack: np.ndarray) -> dict | None:
    """The packaged NanoGuard model on the same rows, at the score where 2% of benign rows
    pass (None when its optional package is not installed)."""
    from guardrails.checks.nanoguard import NanoGuardCheck
    from guardrails.registry import ConfigError, build_check

    try:
        check = build_check(NanoGuardCheck.name, {}, "input", "eval", {})
    except ConfigError:
        return None
    from sklearn.metrics import roc_auc_score

    scores = np.array([check.score(r["text"]) for r in rows])
    threshold = np.quantile(scores[~attack], 0.98)
    return {"auc": round(float(roc_auc_score(attack, scores)), 3), **_rates(scores > threshold, attack)}


def injection_metrics(guard, embedder, every: int = 1) -> dict:
    """Injection detection on two labelled sets: the training set (the classifier scored
    out-of-fold) and a held-out set written separately, which nothing was tuned on."""
    from guardrails.checks.injection_classifier import (HELD_OUT, LORA_DIR, InjectionClassifierCheck, labelled_rows,
                                                        lora_classifier, training_rows)
    from guardrails.heads import data_hash
    from guardrails.checks.prompt_injection import PromptInjectionCheck
    from guardrails.registry import CheckContext
    from guardrails.text import normalise
    from guardrails.text_classifier import FOLDS, out_of_fold_scores, threshold_for_fpr

    labelled = labelled_rows()
    held_out = load_labelled(HELD_OUT, ("attack", "benign"))[::every]
    rules = PromptInjectionCheck(PromptInjectionCheck.Params())

    def rule_hits(rows: list[dict]) -> np.ndarray:
        return np.array([bool(rules.check(row["text"], CheckContext()).reasons) for row in rows])

    def is_attack(rows: list[dict]) -> np.ndarray:
        return np.array([r["label"] == "attack" for r in rows])

    report: dict = {"labelled": {"attacks": int(is_attack(labelled).sum()), "benign": int((~is_attack(labelled)).sum())},
                    "held_out": {"attacks": int(is_attack(held_out).sum()), "benign": int((~is_attack(held_out)).sum())}}
    report["rules"] = {"labelled": _rates(rule_hits(labelled), is_attack(labelled)),
                       "held_out": _rates(rule_hits(held_out), is_attack(held_out))}
    # Out-of-fold scores of the classifier's own training rows, at the policy's operating points.
    train = training_rows()
    served = next((c.model for c in guard.input_checks if isinstance(c, InjectionClassifierCheck)), None)
    if served is not None and served.trained_on == data_hash(train) and len(served.out_of_fold) == len(train):
        oof = served.out_of_fold  # saved when the served model was trained on these rows
    else:
        texts = [normalise(r["text"]) for r in train]
        oof = out_of_fold_scores(texts, np.asarray(embedder.embed(texts)), is_attack(train))
    benign = np.sort(oof[~is_attack(train)])
    cv = {}
    for fpr in (0.005, 0.01, 0.02, 0.03, 0.05):
        cv[str(fpr)] = _rates(oof[: len(labelled)] >= threshold_for_fpr(benign, fpr), is_attack(labelled))
    report[f"classifier_cv_{FOLDS}fold"] = cv
    # The n-gram model and the LoRA-tuned encoder averaged, as the default policy runs them:
    # their out-of-fold scores were saved when the LoRA model was trained on these rows.
    pair_oof = np.asarray(lora_classifier(LORA_DIR).meta["out_of_fold"])
    pair_benign = np.sort(pair_oof[~is_attack(train)])
    report[f"pair_cv_{FOLDS}fold"] = {
        str(fpr): _rates(pair_oof[: len(labelled)] >= threshold_for_fpr(pair_benign, fpr), is_attack(labelled))
        for fpr in (0.005, 0.01, 0.015, 0.02, 0.03)}
    report["nanoguard_held_out"] = _nanoguard_rates(held_out, is_attack(held_out))
    # The whole input policy (rules, classifier and every other check) on the held-out set.
    verdicts = [guard.inspect_input(r["text"]) for r in held_out]
    flagged = np.array([any(x.startswith("prompt_injection") for x in v.reasons) for v in verdicts])
    blocked = np.array([v.action.value == "block" for v in verdicts])
    # The target's benign set is support questions that use trigger words: rate those alone too.
    trigger = np.array([bool(TRIGGER_WORDS.search(r["text"])) for r in held_out])
    report["policy_held_out"] = {"detected": _rates(flagged, is_attack(held_out)),
                                 "blocked": _rates(blocked, is_attack(held_out)),
                                 "trigger_word_benign": {"n": int((trigger & ~is_attack(held_out)).sum()),
                                                         "fpr": round(float(flagged[trigger & ~is_attack(held_out)].mean()), 3)}}
    return report


def groundedness_metrics(embedder, threshold: float = 0.45) -> dict:
    from guardrails.checks.groundedness import support_score, unsupported_numbers

    rows = [json.loads(line) for line in (DATA / "groundedness.jsonl").read_text().splitlines() if line.strip()]
    truth = np.array([r["label"] == "grounded" for r in rows])
    passed = np.array([support_score(embedder, r["answer"], [r["context"]]) >= threshold
                       and not unsupported_numbers(r["answer"], [r["context"]]) for r in rows])
    return {"pairs": len(rows), "accuracy": round(float((passed == truth).mean()), 3),
            "ungrounded_caught": round(float((~passed[~truth]).mean()), 3),
            "grounded_kept": round(float(passed[truth].mean()), 3), "threshold": threshold}


def sentiment_metrics(embedder) -> dict:
    from guardrails.checks.sentiment import LABELLED, LABELS

    rows = load_labelled(LABELLED, LABELS)
    probs, classes, labels = cross_val_probs(embedder, rows, 4.0)
    predicted = np.asarray(classes)[probs.argmax(axis=1)]
    report = {}
    for label in LABELS:
        tp = int(((predicted == label) & (labels == label)).sum())
        p = tp / max(1, int((predicted == label).sum()))
        r = tp / max(1, int((labels == label).sum()))
        report[label] = {"precision": round(p, 3), "recall": round(r, 3),
                         "f1": round(2 * p * r / (p + r) if p + r else 0.0, 3), "n": int((labels == label).sum())}
    report["macro_f1"] = round(float(np.mean([v["f1"] for v in report.values()])), 3)
    return report


def banned_topic_metrics(guard) -> dict:
    """The policy's input checks on labelled off-limits questions and near-topic ordinary ones;
    and the banned-topic checks alone on everyday messages (sample questions, sentiment set)."""
    from guardrails.checks.injection_classifier import everyday_messages
    from guardrails.registry import CheckContext

    rows = [json.loads(line) for line in (DATA / "banned_topics.jsonl").read_text().splitlines() if line.strip()]
    on_topic = np.array([r["topic"] != "none" for r in rows])
    reasons = [guard.inspect_input(r["text"]).reasons for r in rows]
    caught = np.array([any(x.startswith("banned_topic:") for x in rs) for rs in reasons])
    right = np.array([f"banned_topic:{r['topic']}" in rs for r, rs in zip(rows, reasons)])
    checks = [c for c in guard.input_checks if c.name == "banned_topics"]
    everyday = everyday_messages()
    flagged = [any(c.check(t, CheckContext()).reasons for c in checks) for t in everyday]
    return {"off_limits": int(on_topic.sum()), "ordinary": int((~on_topic).sum()),
            "caught": round(float(caught[on_topic].mean()), 3),
            "right_topic": round(float(right[on_topic].mean()), 3),
            "ordinary_flagged": round(float(caught[~on_topic].mean()), 3),
            "everyday": len(everyday), "everyday_flagged": round(float(np.mean(flagged)), 3)}


HELD_OUT = Path(__file__).resolve().parent / "eval"
ORDINARY_SETS = ("ordinary_heldout.jsonl", "ordinary_heldout_b.jsonl")
SENTIMENT_SET = "sentiment_heldout.jsonl"
_EXPECTED = {"angry": "flag", "distressed": "flag", "human_request": "handoff"}


def false_alarm_metrics(guard, every: int = 1, directory: Path = HELD_OUT, ordinary: Sequence[str] = ORDINARY_SETS,
                        alarms: Sequence[str] = (SENTIMENT_SET,)) -> dict:
    """The whole input policy on ordinary support messages full of trigger words (the share
    flagged, handed off or blocked for any reason, and why), and on angry, distressed and
    human-request messages (the share caught, and caught as meant: flagged, or handed off for a
    request). By default the held-out sets nothing was tuned on."""
    def read(name: str) -> list[dict]:
        return [json.loads(line) for line in (directory / name).read_text().splitlines() if line.strip()][::every]

    report: dict = {}
    for name in ordinary:
        rows = read(name)
        verdicts = [guard.inspect_input(r["text"]) for r in rows]
        alarms_raised = [v for v in verdicts if v.action.value != "allow"]
        why = Counter(r.split(":")[0] if r.startswith("prompt_injection") else r for v in alarms_raised for r in v.reasons)
        report[name] = {"messages": len(rows), "alarm_rate": round(len(alarms_raised) / len(rows), 3),
                        "by_reason": dict(why.most_common())}
    rows = [row for name in alarms for row in read(name)]
    verdicts = [guard.inspect_input(r["text"]) for r in rows]
    for label, expected in _EXPECTED.items():
        mine = [v for r, v in zip(rows, verdicts) if r["label"] == label]
        report[f"{label}_recall"] = {
            "messages": len(mine),
            "caught": round(sum(v.action.value != "allow" for v in mine) / len(mine), 3),
            "as_meant": round(sum(v.action.value == expected for v in mine) / len(mine), 3),
        }
    return report


# The sets the input policy was tuned on (`data/`), reported beside the held-out ones.
DEV_ORDINARY = ("ordinary_dev.jsonl", "ordinary_dev_b.jsonl")
DEV_ALARMS = ("alarms_dev.jsonl", "alarms_dev_b.jsonl")


PII_DEV = Path(__file__).resolve().parent / "data" / "pii_dev.jsonl"
PII_DEV_B = Path(__file__).resolve().parent / "data" / "pii_dev_b.jsonl"  # dates of birth, addresses, names
PII_DEV_C = Path(__file__).resolve().parent / "data" / "pii_dev_c.jsonl"  # lower-case, surname-first, many locales
PII_DEV_D = Path(__file__).resolve().parent / "data" / "pii_dev_d.jsonl"  # moves, records, birthdays without a year
PII_DEV_E = Path(__file__).resolve().parent / "data" / "pii_dev_e.jsonl"  # records, states spelled out, more countries
PII_DEV_F = Path(__file__).resolve().parent / "data" / "pii_dev_f.jsonl"  # clean lines with places, brands, characters


def evaluate_guardrails(guard, embedder, pii_sentences: int = 1200, every: int = 1) -> dict:
    """Every section; `every` > 1 reads only every n-th message of each labelled set that goes
    through the checks (a quick look; the figures to quote are from the whole sets)."""
    return {
        "false_alarms": false_alarm_metrics(guard, every),
        "false_alarms_dev": false_alarm_metrics(guard, every, DATA, DEV_ORDINARY, DEV_ALARMS),
        "banned_topics": banned_topic_metrics(guard),
        "pii": pii_metrics(guard.redactor, generate_pii_set(pii_sentences)),
        # Written apart from the recognizers: the held-out set is reported, the dev set tuned on.
        "pii_heldout": evaluate_pii(guard.redactor.analyze, HELDOUT, every),
        "pii_dev": evaluate_pii(guard.redactor.analyze, PII_DEV, every),
        "pii_dev_b": evaluate_pii(guard.redactor.analyze, PII_DEV_B, every),
        "pii_dev_c": evaluate_pii(guard.redactor.analyze, PII_DEV_C, every),
        "pii_dev_d": evaluate_pii(guard.redactor.analyze, PII_DEV_D, every),
        "pii_dev_e": evaluate_pii(guard.redactor.analyze, PII_DEV_E, every),
        "pii_dev_f": evaluate_pii(guard.redactor.analyze, PII_DEV_F, every),
        "injection": injection_metrics(guard, embedder, every),
        "groundedness": groundedness_metrics(embedder),
        "sentiment": sentiment_metrics(embedder),
    }

