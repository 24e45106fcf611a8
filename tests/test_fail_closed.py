"""Every way the governance layer could fail open, shown to block or stop start-up instead."""
from __future__ import annotations

import pytest

from assistant.errors import ConfigError
from assistant.service import Assistant
from guardrails.guard import Guard
from guardrails.policy import load_policy


class Exploding:
    name = "exploding"

    def check(self, text, ctx):
        raise RuntimeError("the check broke")


def _assistant(services, guard=None, generator=None) -> Assistant:
    return Assistant(guard or services.guard, services.retriever, generator or services.generator, services.store)


def test_input_check_that_raises_blocks_and_flags(services):
    guard = Guard.from_file()
    guard.input_checks = [*guard.input_checks, Exploding()]
    result = _assistant(services, guard).respond(None, "Where is my parcel?")
    assert result.action == "block"
    assert "check_error:exploding" in result.reasons
    assert result.answer == guard.block_message
    row = next(r for r in services.store.exchanges(limit=20) if r["id"] == result.exchange_id)
    assert row["flagged"] is True


def test_injection_model_that_breaks_blocks_even_after_a_failed_prefetch(services, monkeypatch):
    """The LoRA model scores early, beside PII detection; if that fails, the check itself
    scores again, and its failure blocks the message: a broken model never passes one."""
    guard = Guard.from_file()
    check = next(c for c in guard.input_checks if c.name == "injection_classifier")

    def broken(texts):
        raise RuntimeError("the LoRA model broke")

    monkeypatch.setattr(check.lora, "scores", broken)
    verdict = guard.inspect_input("Where is my parcel? It was due on Monday.")
    assert verdict.action.value == "block" and "check_error:injection_classifier" in verdict.reasons


def test_output_check_that_raises_blocks_the_answer(services):
    guard = Guard.from_file()
    guard.output_checks = [Exploding()]
    result = _assistant(services, guard).respond(None, "How do refunds work?")
    assert result.action == "block" and "check_error:exploding" in result.reasons
    assert result.answer == guard.block_message


def test_redaction_that_raises_blocks_and_keeps_no_text(services, monkeypatch):
    guard = Guard.from_file()

    def broken(*args, **kwargs):
        raise RuntimeError("presidio down")

    monkeypatch.setattr(guard.redactor, "analyze", broken)
    secret = "my email is someone@example.com"
    result = _assistant(services, guard).respond(None, secret)
    assert result.action == "block" and "check_error:redaction" in result.reasons
    row = next(r for r in services.store.exchanges(limit=20) if r["id"] == result.exchange_id)
    assert "someone@example.com" not in str(row)


def test_generator_error_blocks_and_still_logs(services):
    class Broken:
        model_name = "broken"
        adapter = None

        def stream(self, messages):
            yield "partial "
            raise RuntimeError("CUDA out of memory")

    result = _assistant(services, generator=Broken()).respond(None, "How do I track my order?")
    assert result.action == "block" and "error:RuntimeError" in result.reasons
    assert any(r["id"] == result.exchange_id for r in services.store.exchanges(limit=20))


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the policy is empty"),
        ("pii: {entities: {PERSON: redact}}\ninput_checks: []\noutput_checks: [{type: output_pii}]", "input_checks"),
        ("pii: {entities: {PERSON: redact}}\ninput_checks: [{type: no_such_check}]\noutput_checks: [{type: output_pii}]",
         "input_checks[0]: unknown check 'no_such_check'"),
        ("pii: {entities: {PERSON: redact}}\ninput_checks: [{type: length, params: {max_char: 5}}]\n"
         "output_checks: [{type: output_pii}]", "input_checks[0].params: max_char: unknown parameter"),
        ("pii: {entities: {PERSON: explode}}\ninput_checks: [{type: length}]\noutput_checks: [{type: output_pii}]",
         "pii.entities.PERSON"),
        ("pii: {entities: {PERSON: redact}}\ninput_checks: [{type: output_pii}]\noutput_checks: [{type: output_pii}]",
         "cannot run on input"),
        ("pii: {entities: {NO_SUCH_ENTITY: redact}}\ninput_checks: [{type: length}]\noutput_checks: [{type: output_pii}]",
         "no recognizer for NO_SUCH_ENTITY"),
        ("pii: [unclosed", "not valid YAML"),
        ("surprise: 1\npii: {entities: {PERSON: redact}}\ninput_checks: [{type: length}]\noutput_checks: [{type: output_pii}]",
         "surprise: unknown key"),
    ],
)
def test_bad_policy_stops_start_up_naming_file_and_key(tmp_path, text, message):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        Guard.from_file(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_policy_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="policy file not found"):
        load_policy(tmp_path / "nope.yaml")


def test_missing_model_stops_start_up(services, tmp_path):
    from assistant.errors import ModelUnavailable
    from assistant.generator import LocalGenerator

    with pytest.raises(ModelUnavailable, match="cannot load the model"):
        LocalGenerator(tmp_path / "no-model", "x", device="cpu")


def test_promoted_adapter_that_is_missing_fails_closed(tmp_path):
    from assistant.errors import ModelUnavailable
    from finetune.registry import current_adapter

    assert current_adapter(tmp_path) is None
    (tmp_path / "current").write_text("v7\n")
    with pytest.raises(ModelUnavailable, match="v7"):
        current_adapter(tmp_path)


def test_a_check_that_hangs_times_out_and_blocks(services):
    import threading

    release = threading.Event()

    class Hanging:
        name = "hanging"

        def check(self, text, ctx):
            release.wait(10)
            raise AssertionError("should have been abandoned")

    guard = Guard.from_file()
    guard.timeout_s = 0.2
    guard.input_checks = [*guard.input_checks, Hanging()]
    verdict = guard.inspect_input("Where is my parcel?")
    release.set()
    assert verdict.action.value == "block" and "check_timeout:hanging" in verdict.reasons


def test_missing_ner_or_embedding_model_stops_start_up(tmp_path):
    from assistant.errors import ModelUnavailable
    from retrieval.embeddings import Embedder

    with pytest.raises(ModelUnavailable, match="no_such_spacy_model"):
        Guard.from_file(spacy_model="no_such_spacy_model")
    with pytest.raises(ModelUnavailable, match="cannot load embedding model"):
        Embedder(model_path=str(tmp_path / "no-embedder"))
