"""Answer modes, citations, follow-ups and abstaining, through the real governed turn.

The knowledge base, Presidio, the checks and the embedder are real. Where a test needs the
model to say something grounded, a scripted generator quotes its first passage (the tiny
random model's answers are noise).
"""
from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from assistant.evaluate import eval_answers
from assistant.service import NO_CONTEXT_ANSWER, Assistant
from core.errors import ConfigError
from finetune.registry import AdapterRef
from tests.conftest import ScriptedGenerator, quote_first_passage

MARKER = re.compile(r"\[(\d+)\]")


def _assistant(services, mode: str, generator=None, adapter=None, trust: str = "groundedness") -> Assistant:
    """`trust`: "groundedness" by default here, so `auto` asks the scripted model whatever serves."""
    return Assistant(services.guard, services.retriever, generator or services.generator, services.store,
                     answer_mode=mode, extractor=services.extractor, adapters=lambda session: adapter,
                     auto_trust=trust)


def _markers_match_sources(result) -> None:
    markers = [int(n) for n in MARKER.findall(result.answer)]
    assert markers, result.answer
    assert all(1 <= n <= len(result.sources) for n in markers)


def test_extractive_answers_quote_the_passages_with_citations(services):
    result = _assistant(services, "extractive").respond(None, "Can I return a blender I already opened?")
    assert result.answer_mode == "extractive" and result.action == "allow", result.reasons
    _markers_match_sources(result)
    cited = {result.sources[int(n) - 1].source for n in MARKER.findall(result.answer)}
    assert "returns-policy.md" in cited
    # Every sentence is the articles' own: it stands in the passage its marker names.
    for sentence, n in re.findall(r"(.+?) \[(\d+)\]\s*", result.answer):
        words = re.sub(r"[*_`]", "", sentence).rstrip(".")[-40:]
        assert words in result.sources[int(n) - 1].text.replace("**", ""), sentence


def test_auto_shows_a_grounded_model_answer_with_citations(services):
    result = _assistant(services, "auto", ScriptedGenerator(quote_first_passage)).respond(
        None, "How many days do I have to return an item?")
    assert result.answer_mode == "generate" and result.action == "allow", result.reasons
    _markers_match_sources(result)


def test_auto_asks_the_model_only_once_its_adapter_beat_the_extractive_answers(services, tmp_path):
    """The gate's comparison with the extractive answers decides: the base model and an adapter
    that did not beat them are not asked at all; one that did has its grounded answer shown."""
    question = "How many days do I have to return an item?"
    for adapter in (None, AdapterRef("v-lost", tmp_path, trusted=False)):
        model = ScriptedGenerator(quote_first_passage)
        result = _assistant(services, "auto", model, adapter, trust="gate").respond(None, question)
        assert result.answer_mode == "extractive" and result.action == "allow", result.reasons
        assert model.produced == 0  # never asked: no generation time spent
        _markers_match_sources(result)
        row = next(r for r in services.store.exchanges(limit=20) if r["id"] == result.exchange_id)
        assert row["raw_answer"] is None and row["messages"]  # the prompt is still logged for retraining
    won = AdapterRef("v-won", tmp_path, trusted=True)
    result = _assistant(services, "auto", ScriptedGenerator(quote_first_passage), won, trust="gate").respond(
        None, question)
    assert result.answer_mode == "generate" and result.adapter == "v-won", result.reasons


def test_auto_falls_back_to_extractive_when_the_model_is_ungrounded(services):
    script = ["Our premium llama grooming service costs 30 euros a session. ", "Book it on the moon portal."]
    result = _assistant(services, "auto", ScriptedGenerator(script)).respond(
        None, "How many days do I have to return an item?")
    assert result.answer_mode == "extractive" and "llama" not in result.answer
    assert any(r.startswith("generated:ungrounded") for r in result.reasons)
    assert result.action == "allow"  # the answer shown is grounded: nothing for a reviewer
    _markers_match_sources(result)
    row = next(r for r in services.store.exchanges(limit=20) if r["id"] == result.exchange_id)
    assert row["answer_mode"] == "extractive" and row["answer"] == result.answer


def test_generate_mode_withholds_an_ungrounded_answer(services):
    from guardrails.checks.groundedness import FALLBACK

    result = _assistant(services, "generate", ScriptedGenerator(["The moon portal sells llamas for 30 euros. "])) \
        .respond(None, "How many days do I have to return an item?")
    assert result.answer == FALLBACK and result.answer_mode is None and result.action == "flag"


@pytest.mark.parametrize("mode", ["extractive", "auto"])
def test_a_question_the_articles_do_not_answer_gets_i_dont_know_and_a_handoff_offer(services, mode):
    result = _assistant(services, mode).respond(None, "Which football team won the league in 1998?")
    assert result.answer == NO_CONTEXT_ANSWER and result.answer_mode is None
    assert {"no_context", "no_answer_in_context"} & set(result.reasons)


@pytest.mark.parametrize("mode", ["generate", "auto"])
def test_passages_that_do_not_answer_are_judged_before_the_model_is_asked(services, mode):
    """The passages are about recipes and cookware, but none says whether there is a podcast:
    the model, handed them, would quote one (grounded, and wrong); it is never asked."""
    generator = ScriptedGenerator(quote_first_passage)
    result = _assistant(services, mode, generator).respond(None, "do you have a podcast or blog with recipes")
    assert result.sources, "the test needs a question that finds passages"
    assert result.answer == NO_CONTEXT_ANSWER and "no_answer_in_context" in result.reasons
    assert generator.produced == 0 and not generator.finished


def test_labelled_questions_say_which_article_answers_a_question_like_them_or_that_none_does(services, tmp_path):
    from retrieval.memory import load_memory

    asked = "my dad will come get it, what does he need to have on him"
    unlabelled = _assistant(services, "extractive").respond(None, asked)
    assert unlabelled.answer == NO_CONTEXT_ANSWER, "the test needs a question under the support bar"
    pickup = "store-pickup-click-and-collect.md"
    labels = [{"question": "my dad is coming to collect my order, what does he need to have with him", "source": pickup},
              {"question": "do you give discounts to students", "source": None, "answerable": False}]
    # One answerable label for every other document: the "not covered" label was written against them all.
    labels += [{"question": f"a question about {s}", "source": s} for s in services.retriever.documents() if s != pickup]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in labels))
    memory = load_memory(str(path), services.kb_embedder, tmp_path, 0.7)
    assistant = _assistant(services, "extractive")
    assistant.memory = memory

    answered = assistant.respond(None, asked)
    assert answered.answer_mode == "extractive" and "recalled:covered" in answered.reasons
    assert answered.sources[0].source == pickup
    _markers_match_sources(answered)
    student = assistant.respond(None, "do you guys offer a student discount?")
    assert student.answer == NO_CONTEXT_ANSWER and "recalled:not_covered" in student.reasons
    # A follow-up is left to the conversation.
    follow = assistant.respond(answered.session_id, "and what about a student discount?")
    assert not any(r.startswith("recalled:") for r in follow.reasons)
    # A document the labels never named may answer what they say is not covered: that label no longer counts.
    path.write_text("".join(json.dumps(r) + "\n" for r in labels[:-1]))
    assistant.memory = load_memory(str(path), services.kb_embedder, tmp_path, 0.7)
    assert "recalled:not_covered" not in assistant.respond(None, "do you guys offer a student discount?").reasons
    with pytest.raises(ConfigError, match="question_memory"):
        load_memory(str(tmp_path / "missing.jsonl"), services.kb_embedder, None, 0.7)


def test_agents_up_votes_label_questions_until_a_down_vote_or_an_erasure_takes_them_back(services, tmp_path):
    from assistant.actor import cli_actor
    from retrieval.memory import load_memory

    memory = load_memory("none", services.kb_embedder, tmp_path, 0.7, services.feedback.approved_questions,
                         refresh_s=0)
    assistant = _assistant(services, "extractive")
    assistant.memory = memory
    asked = "my dad will come get it, what does he need to have on him"
    assert assistant.respond(None, asked).answer == NO_CONTEXT_ANSWER, "the test needs a question under the bar"
    answered = assistant.respond(None, "my dad is collecting my order, what does he need to bring")
    unknown = assistant.respond(None, "do the showrooms run cooking classes on weekends?")
    assert answered.answer_mode == "extractive" and unknown.answer == NO_CONTEXT_ANSWER
    agent, reviewer = cli_actor(), replace(cli_actor(), id="another-agent")
    try:
        services.feedback.give(agent, answered.exchange_id, "up")
        services.feedback.give(agent, unknown.exchange_id, "up")
        learned = assistant.respond(None, asked)
        assert learned.answer_mode == "extractive" and "recalled:covered" in learned.reasons
        assert learned.sources[0].source == answered.sources[0].source
        declined = assistant.respond(None, "are there cooking classes at your showrooms?")
        assert declined.answer == NO_CONTEXT_ANSWER and "recalled:not_covered" in declined.reasons
        # An "I don't know" counts only until a document is ingested after it.
        later = "2999-01-01T00:00:00+00:00"
        recalled = memory.recall("are there cooking classes at your showrooms?", services.retriever.documents(), later)
        assert recalled is None or recalled.source is not None
        # Someone's down-vote takes the label back.
        services.feedback.give(reviewer, answered.exchange_id, "down", "wrong")
        assert "recalled:covered" not in assistant.respond(None, asked).reasons
    finally:
        for turn in (answered, unknown):
            services.erasure.erase_session(agent, turn.session_id)
    # Erased conversations take their labels with them.
    assert not any(x.question.startswith("do the showrooms run cooking")
                   for x in services.feedback.approved_questions()[1])
    assert "recalled:not_covered" not in assistant.respond(None, "are there cooking classes at your showrooms?").reasons


def test_the_samples_not_covered_labels_end_when_a_sample_article_changes(services, tmp_path):
    import hashlib

    from retrieval.memory import SAMPLE_KB, load_memory

    memory = load_memory("sample", services.kb_embedder, tmp_path, 0.7)
    as_shipped = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in SAMPLE_KB.iterdir()}
    asked = "do u guys do a student discount?"
    assert memory.current(as_shipped) and memory.recall(asked, as_shipped).source is None
    for changed in ({**as_shipped, "returns-policy.md": "an edited version"},
                    {**as_shipped, "student-discounts.md": "a new document"}, None):
        assert not memory.current(changed)
        recalled = memory.recall(asked, changed)
        assert recalled is None or recalled.source is not None


def test_a_follow_up_finds_the_article_of_the_first_turn(services):
    first = "How long is the warranty on furniture?"
    follow = "and what about for a kettle?"
    alone = [h.source for h in services.retriever.context_for(follow)]
    with_history = [h.source for h in services.retriever.context_for(follow, [first])]
    assert "product-warranty.md" in with_history
    assert with_history != alone
    assistant = _assistant(services, "extractive")
    turn = assistant.respond(None, first)
    second = assistant.respond(turn.session_id, follow)
    assert "product-warranty.md" in [h.source for h in second.sources]


def test_eval_answers_reports_every_figure_per_mode(services, tmp_path):
    path = tmp_path / "q.jsonl"
    rows = [
        {"id": "1", "question": "can a customer send back a blender they already opened?",
         "source": "returns-policy.md", "answer": "Yes, if clean and complete.", "facts": ["re:opened"]},
        {"id": "2", "question": "Which football team won the league in 1998?", "source": None,
         "answerable": False},
        {"id": "3", "question": "How long is the warranty on furniture?", "source": "product-warranty.md",
         "answer": "See the warranty.", "facts": ["re:year"],
         "followup": {"question": "and what about for a kettle?", "source": "product-warranty.md",
                      "answer": "See the warranty.", "facts": ["re:year"]}},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    before = len(services.store.exchanges(limit=10_000))
    [report] = list(eval_answers(services, {"q.jsonl": path}, ["extractive"]))
    assert set(report) == {"mode", "questions", "answered", "correct", "token_f1", "cited", "abstain",
                           "followup_correct", "latency_ms"}
    assert report["mode"] == "extractive" and report["questions"] == {"file": "q.jsonl", "items": 3}
    assert report["answered"] == 1.0 and report["correct"] >= 0.5 and report["abstain"] == 1.0
    assert report["cited"]["any"] == 1.0 and report["latency_ms"]["p50"] > 0
    assert len(services.store.exchanges(limit=10_000)) == before  # evaluation never writes the exchange log


def test_a_waiting_turn_is_told_its_place_as_the_answers_ahead_finish(services):
    import contextlib
    import threading
    import time

    from assistant.service import Queued, Token
    from assistant.waiting import WaitingLine

    class OneAtATime(ScriptedGenerator):
        """Like the local model: one answer at a time, in a waiting line."""

        line = WaitingLine()

        def stream(self, messages, served=None, adapter=None, place=None):
            with contextlib.nullcontext() if place is not None else self.line.turn():
                yield from super().stream(messages)

    generator = OneAtATime(quote_first_passage)
    assistant = _assistant(services, "generate", generator)
    writing = generator.line.join()  # another agent's answer is being written...
    assert writing.wait(0)
    waiting = generator.line.join()  # ...and a third agent's turn came before ours
    events: list = []
    turn = threading.Thread(target=lambda: events.extend(assistant.stream(None, "How many days do I have to return an item?")))
    # `extend` sees the events only at the end: watch the line instead, then check the events after.
    turn.start()

    def until(condition) -> None:
        deadline = time.time() + 30
        while not condition():
            assert time.time() < deadline
            time.sleep(0.02)

    until(lambda: generator.line._issued == 3)  # our turn has joined the line
    time.sleep(0.3)
    writing.leave()
    assert waiting.wait(5)  # first come, first served: the earlier waiter goes before ours
    time.sleep(0.8)  # long enough for our turn to see its new place
    waiting.leave()
    turn.join(30)
    kinds = [type(e) for e in events]
    assert [e.ahead for e in events if isinstance(e, Queued)] == [2, 1]
    assert Token in kinds and kinds.index(Queued) < kinds.index(Token)
    assert not generator.line.busy()  # the turn left the line when it was done


def test_the_waiting_line_is_first_come_first_served_and_skips_places_given_up():
    import threading

    from assistant.waiting import WaitingLine

    line = WaitingLine()
    first, second, third, fourth = (line.join() for _ in range(4))
    assert [p.ahead() for p in (first, second, third, fourth)] == [0, 1, 2, 3]
    third.leave()  # gave up (closed the tab) before its turn
    assert fourth.ahead() == 2 and not fourth.wait(0)
    served: list[str] = []
    threads = [threading.Thread(target=lambda p=p, name=name: (p.wait(10), served.append(name), p.leave()))
               for p, name in ((fourth, "fourth"), (second, "second"))]
    for t in threads:
        t.start()
    first.leave()
    for t in threads:
        t.join(10)
    assert served == ["second", "fourth"] and not line.busy()
    with line.turn():
        assert line.busy()


def test_the_prompt_shows_each_passage_cut_to_the_sentences_that_bear_on_the_question(services):
    question = "my return label expired, what now?"
    hits = services.retriever.context_for(question)
    cut = services.extractor.evidence(question, hits, (), 2)
    # The same passages under the same numbers, so the markers the model writes name the sources.
    assert [h.chunk_id for h in cut] == [h.chunk_id for h in hits]
    assert all(len(c.text) <= len(h.text) for c, h in zip(cut, hits)) and sum(map(len, (c.text for c in cut))) < sum(
        len(h.text) for h in hits)
    assert any("expires" in c.text for c in cut)  # the sentence that answers stays
    for c, h in zip(cut, hits):
        assert c.text.split("\n\n")[0] == h.text.split("\n\n")[0]  # under its "Title > Heading" line
        assert c.text.split("\n\n", 1)[-1].strip()  # every passage keeps its best sentence
    seen = []
    script = ScriptedGenerator(lambda messages: seen.append(messages) or ["Request a new label. "])
    assistant = Assistant(services.guard, services.retriever, script, services.store, answer_mode="generate",
                          extractor=services.extractor, context_sentences=2)
    result = assistant.respond(None, question)
    prompt = seen[0][-1]["content"]
    assert all(c.text in prompt for c in cut)
    assert services.store.exchange(result.exchange_id)["messages"][-1]["content"] == prompt  # for retraining


def test_the_repetition_penalty_spares_the_words_of_the_prompt(services):
    """A grounded answer repeats the passages' words: only the answer's own repeats are penalised."""
    import torch

    generator = services.generator
    assert generator.penalize_prompt is False  # the default
    generator.penalize_prompt = True
    try:
        assert "logits_processor" not in generator._decoding(prompt_length=4)  # transformers' own
    finally:
        generator.penalize_prompt = False
    processor = generator._decoding(prompt_length=4)["logits_processor"][0]
    prompt_and_answer = torch.tensor([[11, 12, 13, 14, 15, 15]])  # 4 prompt tokens, then 2 answered
    scores = processor(prompt_and_answer, torch.ones(1, 20))
    assert scores[0, 12] == 1.0 and scores[0, 14] == 1.0  # in the prompt only: untouched
    assert scores[0, 15] < 1.0  # the answer's own repeat
