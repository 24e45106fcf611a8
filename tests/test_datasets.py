"""Training datasets from the log and from the knowledge base, on the real store, Presidio and KB."""
from __future__ import annotations

import json
import re

import pytest

from assistant.actor import Actor
from assistant.datasets import DatasetService
from assistant.service import Assistant
from assistant.store import ExchangeRecord
from finetune.datasets import PiiInDataset
from tests.conftest import ScriptedGenerator, quote_first_passage

AGENT = Actor("ui:agent-ds", "agent", "ui")
ADMIN = Actor("cli:admin", "admin", "cli")


def _datasets(services, folder) -> DatasetService:
    return DatasetService(services.engine, services.store, services.feedback, services.review, folder,
                          services.find_pii, lambda: services.vectors, services.catalog, lambda: services.retriever,
                          evidence=services.evidence)


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_turns_feedback_and_decisions_into_sft_dpo_and_kto_rows(services, tmp_path):
    assistant = Assistant(services.guard, services.retriever, ScriptedGenerator(quote_first_passage), services.store,
                          answer_mode="generate", extractor=services.extractor)
    corrected = assistant.respond(None, "Can I return a blender I already opened?", AGENT)
    services.feedback.give(AGENT, corrected.exchange_id, "down", "wrong",
                           "Yes: within 30 days, if it is clean and complete [1].")
    liked = assistant.respond(None, "How do I track my order?", AGENT)
    services.feedback.give(AGENT, liked.exchange_id, "up")
    approved = assistant.respond(None, "How long do refunds take?", AGENT)
    services.feedback.give(AGENT, approved.exchange_id, "down", "incomplete")
    services.review.decide(ADMIN, approved.exchange_id, "approve")

    built = _datasets(services, tmp_path).build(ADMIN)
    rows = {kind: [r for split in ("train", "eval") for r in _rows(built.path / f"{kind}_{split}.jsonl")]
            for kind in ("sft", "dpo", "kto")}
    assert built.rows == {k: len(v) for k, v in rows.items()}

    def of(kind, exchange_id):
        return [r for r in rows[kind] if r["lineage"]["exchange_id"] == exchange_id]

    record = services.store.exchange(corrected.exchange_id)
    [sft] = of("sft", corrected.exchange_id)
    assert sft["prompt"] == record["messages"]  # the prompt exactly as the model saw it, passages included
    # The words, without the marker: the service marks what the model writes.
    assert sft["completion"] == [{"role": "assistant", "content": "Yes: within 30 days, if it is clean and complete."}]
    [dpo] = of("dpo", corrected.exchange_id)
    assert dpo["chosen"] == sft["completion"] and dpo["rejected"][0]["content"] == record["raw_answer"].strip()
    assert [r["label"] for r in of("kto", corrected.exchange_id)] == [False]
    assert [r["label"] for r in of("kto", liked.exchange_id)] == [True] and not of("sft", liked.exchange_id)
    [reference] = of("sft", approved.exchange_id)  # approved: the answer shown is the reference
    shown = services.store.exchange(approved.exchange_id)["answer"]
    assert re.search(r"\[\d\]", shown) and reference["completion"][0]["content"] == re.sub(r"\s*\[\d+\]", "", shown)
    assert {r["lineage"]["origin"] for r in of("sft", approved.exchange_id)} == {"review"}

    # Split by conversation: no conversation on both sides.
    sides: dict[str, set[str]] = {}
    for kind in rows:
        for split in ("train", "eval"):
            for r in _rows(built.path / f"{kind}_{split}.jsonl"):
                conversation = services.store.exchange(r["lineage"]["exchange_id"])["session_id"]
                sides.setdefault(conversation, set()).add(split)
    assert all(len(s) == 1 for s in sides.values())

    # Lineage in the database; the same content builds the same version; datasets reads the files.
    with services.engine.connect() as conn:
        linked = conn.exec_driver_sql("SELECT kind, feedback_id FROM dataset_rows WHERE version = ? AND exchange_id = ?",
                                      (built.version, corrected.exchange_id)).fetchall()
    assert {k for k, _ in linked} == {"sft", "dpo", "kto"} and all(f for _, f in linked)
    assert _datasets(services, tmp_path).build(ADMIN).version == built.version
    import datasets

    files = [str(p) for p in sorted(built.path.glob("dpo_*.jsonl")) if p.stat().st_size]
    loaded = datasets.load_dataset("json", data_files=files, split="train")
    assert set(loaded.column_names) >= {"prompt", "chosen", "rejected"} and len(loaded) == built.rows["dpo"]


def test_raw_pii_in_a_row_stops_the_build_and_writes_nothing(services, tmp_path):
    messages = [{"role": "system", "content": "x"},
                {"role": "user", "content": "Context:\n[1] (a.md)\nReturns take 30 days.\n\nQuestion: returns?"}]
    exchange_id = services.store.log_exchange(ExchangeRecord(
        "s-leak", "returns?", "Returns take 30 days.", "allow", [], {}, None, [], "v1", "m", None, {},
        messages=messages, raw_answer="Returns take 30 days."))
    # A correction stored without redaction (as a bug elsewhere might): the build must catch it.
    with services.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO feedback (id, exchange_id, actor_id, actor_role, via, rating, reason, correction, created_at) "
            "VALUES ('leak1', ?, 'ui:x', 'agent', 'ui', 'down', NULL, 'Write to maria.g@example.com', '2026')",
            (exchange_id,))
    try:
        with pytest.raises(PiiInDataset, match="EMAIL_ADDRESS"):
            _datasets(services, tmp_path).build(ADMIN)
        assert not any(tmp_path.iterdir())
    finally:
        with services.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM feedback WHERE id = 'leak1'")


def test_an_answer_quoting_its_passage_is_not_raw_pii_but_a_name_of_its_own_is(services):
    from finetune.datasets import Row, scan_rows

    passage = "Our Columbus showroom manager, Maria Lopez, runs the Saturday assembly classes."
    prompt = [{"role": "system", "content": "Answer from the passages."},
              {"role": "user", "content": f"Context:\n[1] (showroom.md)\n{passage}\n\nQuestion: Who runs the classes?"}]

    def row(answer: str) -> Row:
        return Row("sft", "c1", {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}]},
                   {"origin": "review"})

    assert scan_rows([row("Maria Lopez runs them on Saturdays [1].")], services.find_pii) == []
    assert scan_rows([row("Jane Doe runs them [1].")], services.find_pii) == ["sft row 0 completion: PERSON"]
    asked = [prompt[0], {"role": "user", "content": "Context:\n[1] (x.md)\nClasses run on Saturdays.\n\n"
                                                     "Question: Is Jane Doe teaching?"}]
    leaked = Row("sft", "c2", {"prompt": asked, "completion": [{"role": "assistant", "content": "Jane Doe is."}]},
                 {"origin": "review"})
    assert "sft row 0 completion: PERSON" in scan_rows([leaked], services.find_pii)  # the question is no passage


def test_synthesize_makes_grounded_rows_from_the_knowledge_base(services, tmp_path):
    made = _datasets(services, tmp_path).synthesize(ADMIN, distractors=3)
    rows = _rows(tmp_path / "synthetic.jsonl")
    assert made["rows"] == len(rows) > 100
    abstain = [r for r in rows if r["lineage"].get("abstain")]
    grounded = [r for r in rows if not r["lineage"].get("abstain")]
    chunks = {r["lineage"]["chunk_id"] for r in rows}
    assert 0.1 * len(chunks) < len(abstain) < 0.3 * len(chunks)
    for row in abstain:  # the question beside other articles only, and an answer that says so
        assert f"({row['lineage']['source']})" not in row["prompt"][-1]["content"]
        assert "don't know" in row["completion"][0]["content"] and "human" in row["completion"][0]["content"]
    for row in grounded[:: max(1, len(grounded) // 40)]:
        context = row["prompt"][-1]["content"]
        assert context.startswith("Context:\n[1] ") and "[4] (" in context and "[5] (" not in context
        answer = row["completion"][0]["content"]
        assert not re.search(r"\[\d+\]", answer)  # the model learns the words; the service cites them
        first_sentence = re.split(r"(?<=[.!?])\s+", answer)[0]
        # The answer stands in a passage of its own article, as the served prompt shows it.
        passages = [p for p in context.split("\n\n[") if f"({row['lineage']['source']})" in p]
        assert any(first_sentence.rstrip(".")[:30].lower() in p.replace("*", "").lower() for p in passages), answer
        assert row["lineage"]["origin"] == "synthetic" and row["lineage"]["chunk_id"]
    faq_like = [r for r in rows if r["prompt"][-1]["content"].rsplit("Question: ", 1)[1].startswith("Customer asks")]
    assert faq_like  # FAQ pairs give questions too
    built = _datasets(services, tmp_path).build(ADMIN)
    with services.engine.connect() as conn:
        splits = conn.exec_driver_sql("SELECT chunk_id, split FROM dataset_rows WHERE version = ? AND origin = "
                                      "'synthetic'", (built.version,)).fetchall()
    assert len(splits) == len({json.dumps(r["completion"]) + json.dumps(r["prompt"]) for r in rows})
    by_chunk: dict[str, set[str]] = {}
    for chunk_id, split in splits:
        by_chunk.setdefault(chunk_id, set()).add(split)
    assert all(len(s) == 1 for s in by_chunk.values())  # a chunk's rephrasings never straddle the split
    assert {s for (s,) in [tuple(v) for v in by_chunk.values()]} == {"train", "eval"}



def test_an_answer_joining_two_passages_quotes_them_even_where_a_match_runs_across_the_join(services):
    from finetune.datasets import Row, scan_rows

    first = "Larkspur Goods delivers to Canada, Australia, New Zealand and Japan."
    second = "Larkspur Goods Customer Care, 4100 Bridgeway Avenue, Columbus, OH 43219, USA."
    prompt = [{"role": "user", "content": f"Context:\n[1] (a.md)\n{first}\n\n[2] (b.md)\n{second}\n\n"
                                          "Question: where do you ship from and to?"}]

    def row(answer: str) -> Row:
        return Row("kto", "c3", {"prompt": prompt, "completion": [{"role": "assistant", "content": answer}],
                                 "label": True}, {"origin": "feedback"})

    assert scan_rows([row(f"{first} {second}")], services.find_pii) == []
    assert scan_rows([row(f"{first} Send it to 12 Elm Street, Springfield, IL 62704.")], services.find_pii)
