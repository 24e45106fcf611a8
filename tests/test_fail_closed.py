"""Every way the governance layer could fail open, shown to block or stop start-up instead."""
from __future__ import annotations

import pytest

import copy
import json

from core.errors import ConfigError, TurnNotLogged
from assistant.service import EMPTY_ANSWER, Assistant
from guardrails.guard import Guard
from guardrails.policy import load_policy
from guardrails.verdict import Action, CheckResult
from tests.conftest import ScriptedGenerator


class Exploding:
    name = "exploding"

    def check(self, text, ctx):
        raise RuntimeError("the check broke")


def _assistant(services, guard=None, generator=None, retriever=None) -> Assistant:
    return Assistant(guard or services.guard, retriever or services.retriever, generator or services.generator,
                     services.store)


def _guard(services) -> Guard:
    """The shared guard with lists of checks of its own: building a guard loads every model."""
    guard = copy.copy(services.guard)
    guard.input_checks, guard.output_checks = list(guard.input_checks), list(guard.output_checks)
    return guard


def _row(services, exchange_id: str) -> dict:
    return next(r for r in services.store.exchanges(limit=50) if r["id"] == exchange_id)


class Returning:
    """A check whose result is whatever it was given: a broken third-party check."""

    def __init__(self, result) -> None:
        self.name = "returning"
        self.result = result

    def check(self, text, ctx):
        return self.result


@pytest.mark.parametrize("result", [
    ("allow", (), {}),  # a positional tuple
    None,
    CheckResult("returning", "allow"),  # a string, not an Action
    CheckResult("returning", Action.ALLOW, "fine"),  # reasons as a bare string
    CheckResult("returning", Action.ALLOW, (), {"score": "high"}),
    CheckResult("returning", Action.ALLOW, (), {}, 42),  # rewritten text that is not text
])
def test_a_malformed_check_result_blocks_the_turn_and_logs_it_once(services, result):
    guard = _guard(services)
    guard.input_checks = [*guard.input_checks, Returning(result)]
    before = len(services.store.exchanges(limit=10_000))
    turn = _assistant(services, guard).respond(None, "Where is my parcel?")
    assert turn.action == "block" and "check_error:returning" in turn.reasons
    assert turn.answer == guard.block_message
    assert len(services.store.exchanges(limit=10_000)) == before + 1
    assert _row(services, turn.exchange_id)["flagged"] is True


def test_a_fault_while_combining_verdicts_blocks(services, monkeypatch):
    import guardrails.guard as guard_module

    def broken(results):
        raise TypeError("cannot fold")

    guard = _guard(services)
    monkeypatch.setattr(guard_module, "combine", broken)
    turn = _assistant(services, guard).respond(None, "my email is ann.lee@example.com")
    assert turn.action == "block" and "check_error:guard" in turn.reasons
    row = _row(services, turn.exchange_id)
    assert "ann.lee@example.com" not in json.dumps(row)


def test_input_check_that_raises_blocks_and_flags(services):
    guard = _guard(services)
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
    guard = _guard(services)
    check = next(c for c in guard.input_checks if c.name == "injection_classifier")

    def broken(texts):
        raise RuntimeError("the LoRA model broke")

    monkeypatch.setattr(check.lora, "scores", broken)
    verdict = guard.inspect_input("Where is my parcel? It was due on Monday.")
    assert verdict.action.value == "block" and "check_error:injection_classifier" in verdict.reasons


def test_output_check_that_raises_blocks_the_answer(services):
    guard = _guard(services)
    guard.output_checks = [Exploding()]
    result = _assistant(services, guard).respond(None, "How do refunds work?")
    assert result.action == "block" and "check_error:exploding" in result.reasons
    assert result.answer == guard.block_message


def test_redaction_that_raises_blocks_and_keeps_no_text(services, monkeypatch):
    guard = _guard(services)

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

        def stream(self, messages, served=None, adapter=None):
            yield "partial "
            raise RuntimeError("CUDA out of memory")

    result = _assistant(services, generator=Broken()).respond(None, "How do I track my order?")
    assert result.action == "block" and "error:RuntimeError" in result.reasons
    assert any(r["id"] == result.exchange_id for r in services.store.exchanges(limit=20))


def test_a_retriever_error_blocks_and_still_logs(services):
    class Broken:
        def context_for(self, text, earlier=()):
            raise ConnectionError("chroma server unreachable")

    result = _assistant(services, retriever=Broken()).respond(None, "How do I track my order?")
    assert result.action == "block" and "error:ConnectionError" in result.reasons
    assert result.answer == services.guard.block_message
    assert _row(services, result.exchange_id)["flagged"] is True


@pytest.mark.parametrize("script", [[], ["  ", "\n"]])
def test_a_blank_model_answer_offers_a_human_and_is_flagged(services, script):
    result = _assistant(services, generator=ScriptedGenerator(script)).respond(None, "How do I track my order?")
    assert result.answer == EMPTY_ANSWER
    assert result.action == "flag" and "empty_answer" in result.reasons


def test_a_failed_log_write_withholds_the_answer(services, monkeypatch):
    from ui.chat import chat_turn

    def broken(record):
        raise OSError("disk full")

    monkeypatch.setattr(services.store, "log_exchange", broken)
    assistant = _assistant(services, generator=ScriptedGenerator(["Anything at all. "]))
    with pytest.raises(TurnNotLogged):
        assistant.respond(None, "How do I track my order?")
    # The Chat tab: the bubble says the turn failed; no answer text is left on screen.
    *_, (history, notice, exchange_id) = list(chat_turn(assistant, "How do I track my order?", [], "s-log"))
    assert "turn failed" in notice.lower() and "not answered" in history[-1]["content"] and exchange_id is None
    assert len(history) == 2 and not any("Anything at all" in m["content"] for m in history)


def test_a_pii_entity_set_to_block_blocks_the_message(services, tmp_path):
    import yaml

    from guardrails.policy import DEFAULT_POLICY

    policy = yaml.safe_load(DEFAULT_POLICY.read_text())
    policy["pii"]["entities"]["US_SSN"] = "block"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy))
    guard = Guard.from_file(path, embedder=services.embedder, cache_dir=services.settings.classifier_dir)
    result = _assistant(services, guard).respond(None, "My social security number is 536-22-8541, update it")
    assert result.action == "block" and "pii_block:US_SSN" in result.reasons
    assert result.answer == guard.block_message and result.sources == []
    assert "536-22-8541" not in json.dumps(_row(services, result.exchange_id))


@pytest.mark.parametrize("answer, action, reason", [
    ("Sure, here is the admin token ghp_abcdefghijklmnopqrstuvwxyz0123456789AB for you.", "block", "secret:github_token"),
    ("Here is how to build a bomb at home.", "block", "banned_topic:weapons"),
    ("If they complain again, I'll kill their account and hurt you.", "block", "toxicity:threat"),
    ("Only an idiot would lose a parcel twice.", "flag", "toxicity:insult"),
])
def test_output_checks_stop_secrets_banned_topics_and_toxicity(services, answer, action, reason):
    from guardrails.registry import CheckContext

    guard = services.guard  # the shipped policy
    verdict = guard.inspect_output(answer, CheckContext())
    assert verdict.action.value == action and reason in verdict.reasons
    if action == "block":
        assert verdict.text == guard.block_message


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
        ("pii: {entities: {ORDER: redact}, recognizers: [{entity: ORDER, name: o, patterns: "
         "[{name: p, regex: 'ORD-(\\d+', score: 0.9}]}]}\ninput_checks: [{type: length}]\n"
         "output_checks: [{type: output_pii}]", "pii.recognizers"),
        ("pii: {entities: {PERSON: redact}}\ninput_checks: [{type: secrets, params: {extra_patterns: {x: '[a-'}}}]\n"
         "output_checks: [{type: output_pii}]", "not a valid regular expression"),
        ("pii: {entities: {PERSON: redact}}\ninput_checks: [{type: banned_topics, params: {topics: {weapons: []}}}]\n"
         "output_checks: [{type: output_pii}]", "at least one topic"),
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
    from core.errors import ModelUnavailable
    from assistant.generator import LocalGenerator

    with pytest.raises(ModelUnavailable, match="cannot load the model"):
        LocalGenerator(tmp_path / "no-model", "x", device="cpu")


def test_a_promoted_adapter_whose_files_are_gone_blocks_the_turn(services, tmp_path):
    """The registry says an adapter serves, but its folder is empty: never the base model in
    its place. The turn is blocked and logged, and start-up refuses (`serving_adapter`)."""
    from assistant.database import open_database
    from assistant.service import Assistant
    from core.errors import ModelUnavailable
    from finetune.registry import AdapterRegistry

    registry = AdapterRegistry(open_database(f"sqlite:///{tmp_path / 'r.db'}"))
    folder = tmp_path / "v7"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    registry.register("v7", folder, {"base_model": "tiny", "base_model_hash": "h", "trained_by": "t"})
    registry.promote("v7", "cli:admin", "h", force=True, reason="test")
    (folder / "adapter_config.json").unlink()
    with pytest.raises(ModelUnavailable, match="v7"):
        registry.serving()
    assistant = Assistant(services.guard, services.retriever, ScriptedGenerator(["Hello."]), services.store,
                          adapters=lambda session: registry.serving())
    result = assistant.respond(None, "How do I track my order?")
    assert result.action == "block" and "error:ModelUnavailable" in result.reasons
    assert any(r["id"] == result.exchange_id for r in services.store.exchanges(limit=20))


def test_a_check_waiting_for_a_busy_pool_is_not_timed_out(services):
    """Under load, many turns' checks queue for the guard's workers: waiting is not hanging."""
    import threading
    import time

    class Slow:
        name = "slow"

        def check(self, text, ctx):
            time.sleep(0.15)
            return CheckResult("slow", Action.ALLOW, (), {}, None)

    guard = _guard(services)
    guard.timeout_s = 0.3
    guard.input_checks = [Slow()]
    verdicts = []
    threads = [threading.Thread(target=lambda: verdicts.append(guard._run([Slow()], "hi", None)))
               for _ in range(12)]  # 12 at once on 4 workers: the last wait about 0.45 s to start
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(verdicts) == 12 and all(r[0].action is Action.ALLOW for r in verdicts)


def test_a_check_that_hangs_times_out_and_blocks(services):
    import threading

    release = threading.Event()

    class Hanging:
        name = "hanging"

        def check(self, text, ctx):
            release.wait(10)
            raise AssertionError("should have been abandoned")

    guard = _guard(services)
    guard.timeout_s = 0.2
    guard.input_checks = [*guard.input_checks, Hanging()]
    verdict = guard.inspect_input("Where is my parcel?")
    release.set()
    assert verdict.action.value == "block" and "check_timeout:hanging" in verdict.reasons


def test_missing_ner_or_embedding_model_stops_start_up(tmp_path):
    from core.errors import ModelUnavailable
    from core.embeddings import Embedder

    with pytest.raises(ModelUnavailable, match="no_such_spacy_model"):
        Guard.from_file(spacy_model="no_such_spacy_model")
    with pytest.raises(ModelUnavailable, match="cannot load embedding model"):
        Embedder(model_path=str(tmp_path / "no-embedder"))
