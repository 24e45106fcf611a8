"""Checked before shown: a streamed answer reaches the UI and the API only as it passes the output checks.

The generator is scripted (tests/conftest.py: ScriptedGenerator): the test must choose
what the model "says", a grounded sentence then something that must never be shown.
Everything else is real: Presidio, the embedder behind groundedness, the store.
"""
from __future__ import annotations

import json

import pytest

from assistant.prompt import SYSTEM_PROMPT
from assistant.service import Assistant, Done, Token
from guardrails.registry import CheckContext
from guardrails.streaming import CheckedStream
from tests.conftest import ScriptedGenerator, quote_first_passage

QUESTION = "How many days do I have to return an item?"
LEAK = SYSTEM_PROMPT.split(". ")[1] + ". "  # "Answer the question using only the numbered context passages ..."
EMAIL = "maria.lopez@gmail.com"
API_KEY = "sk-proj-Q7vX2mK9pL4wR8tZ1nB6cD3f"
NUMBER = "9,473"  # a comma: no score or timing in the logged JSON can hold it by chance


def _run(services, bad: str, then_more: bool = True):
    """Stream a turn whose answer is: a grounded sentence, `bad`, then (optionally) another
    grounded sentence. Returns the events and what the generator had produced when the
    first text was shown."""
    def script(messages):
        good = quote_first_passage(messages, 2)
        return [good[0], bad, *(good[1:] if then_more else [])]

    generator = ScriptedGenerator(script)
    assistant = Assistant(services.guard, services.retriever, generator, services.store)
    events, first_shown_at = [], None
    for event in assistant.stream(None, QUESTION):
        if isinstance(event, Token) and first_shown_at is None:
            first_shown_at = (generator.produced, generator.finished)
        events.append(event)
    return events, first_shown_at


def _everything_seen(services, events) -> str:
    """All the UI and the API receive, and what the log row says was shown."""
    result = events[-1].result
    row = next(r for r in services.store.exchanges(limit=50) if r["id"] == result.exchange_id)
    shown = "".join(e.text for e in events if isinstance(e, Token))
    return shown + "\n" + json.dumps(result.as_dict()) + "\n" + row["answer"]


@pytest.mark.parametrize(
    "bad, secret, outcome, reason",
    [
        (LEAK, "numbered context passages", "block", "prompt_leak"),
        (f"You can also write to {EMAIL} about it. ", EMAIL, "flag", "output_pii:EMAIL_ADDRESS"),
        (f"Log in with the key {API_KEY} to check. ", API_KEY, "block", "secret:openai_key"),
        (f"Returns are accepted within {NUMBER} days of delivery. ", NUMBER, "flag", "ungrounded:numbers"),
    ],
)
def test_nothing_unchecked_reaches_the_screen_and_text_still_streams(services, bad, secret, outcome, reason):
    events, first_shown_at = _run(services, bad)
    assert isinstance(events[-1], Done)
    result = events[-1].result
    assert secret not in _everything_seen(services, events)
    assert result.action == outcome and reason in result.reasons
    # The first sentence was shown while the model was still producing the rest.
    assert first_shown_at is not None
    produced, finished = first_shown_at
    assert not finished
    if outcome == "block":
        assert result.answer == services.guard.block_message
    else:  # the sentences that passed are the answer
        assert result.answer == "".join(e.text for e in events if isinstance(e, Token)).strip()
        assert result.answer.count(". ") >= 1


def test_a_redacted_sentence_is_shown_redacted(services):
    # Grounded in the returns passages but for the address, so only the redaction changes it.
    events, _ = _run(services, f"Most items can be returned within 30 days of delivery, write to {EMAIL}. ")
    assert "<EMAIL_ADDRESS>" in "".join(e.text for e in events if isinstance(e, Token))


def test_an_answer_wholly_unsupported_becomes_the_fallback(services):
    from guardrails.checks.groundedness import FALLBACK

    generator = ScriptedGenerator(["Our premium llama grooming service costs 30 euros a session. ",
                                   "Book it on the moon portal."])
    result = Assistant(services.guard, services.retriever, generator, services.store).respond(None, QUESTION)
    assert result.answer == FALLBACK
    assert result.action == "flag" and "ungrounded" in result.reasons


def test_sentences_end_at_punctuation_and_line_breaks_but_not_after_list_numbers(services):
    ctx = CheckContext(system_prompt=SYSTEM_PROMPT)
    stream = CheckedStream(services.guard, ctx)
    assert stream.feed("Step 1. Open the parcel") == []  # no sentence has ended yet
    released = stream.feed(" carefully.\nThen")
    assert released == ["Step 1. Open the parcel carefully.\n"]
    assert stream.finish() == ["Then"]


def test_a_leak_split_across_sentences_is_still_caught(services):
    """The prompt-leak check looks back into the text already released."""
    words = SYSTEM_PROMPT.split(". ")[1].split()
    ctx = CheckContext(system_prompt=SYSTEM_PROMPT)
    stream = CheckedStream(services.guard, ctx)
    stream.feed(" ".join(words[:5]) + "!\n")
    stream.feed(" ".join(words[5:]) + "!\n")
    assert stream.blocked
