"""The adapter registry, the gate's decision, and adapters switched under a running server."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from assistant.database import open_database
from core.errors import BadInput, Conflict
from finetune.gate import against_extractive, decide, paired_bootstrap
from finetune.registry import AdapterRef, AdapterRegistry

PASSED = {"passed": True, "table": []}


def make_adapter(base_dir: Path, out: Path, kind: str = "lora") -> Path:
    """A real peft adapter for the tiny model, with non-zero weights so it changes the answers."""
    import torch
    from peft import AdaLoraConfig, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1 if kind == "lora" else 2)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False) if kind == "lora" else \
        AdaLoraConfig(init_r=6, target_r=4, total_step=10, target_modules=["q_proj", "v_proj"],
                      init_lora_weights=False)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(base_dir)), config)
    if kind == "adalora":  # AdaLoRA starts its singular values at zero: make them count
        for name, weight in model.named_parameters():
            if "lora_E" in name:
                torch.nn.init.normal_(weight)
    model.save_pretrained(str(out))
    return out


def fake_folder(tmp_path: Path, version: str) -> Path:
    folder = tmp_path / version
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    return folder


@pytest.fixture
def registry(tmp_path) -> AdapterRegistry:
    reg = AdapterRegistry(open_database(f"sqlite:///{tmp_path / 'reg.db'}"))
    for version in ("a", "b"):
        reg.register(version, fake_folder(tmp_path, version), {"base_model": "tiny", "base_model_hash": "h1",
                                                               "dataset": "d1", "trained_by": "cli:t"})
    return reg


def test_promotions_stack_and_rollbacks_walk_back_to_the_base_model(registry):
    assert registry.serving() is None
    registry.record_gate("a", PASSED)
    registry.record_gate("b", PASSED)
    registry.promote("a", "cli:x", "h1")
    registry.promote("b", "cli:y", "h1")
    assert registry.serving().version == "b"
    assert {a["version"]: a["serving"] for a in registry.list()} == {"a": False, "b": True}
    assert registry.rollback("cli:z", "worse in A/B") == "a"
    assert registry.serving() == AdapterRef("a", Path(registry.get("a")["path"]))
    assert registry.rollback("cli:z") is None and registry.serving() is None
    with pytest.raises(Conflict, match="base model is serving"):
        registry.rollback("cli:z")
    history = [(e["action"], e["version"], e["actor"]) for e in registry.events()]
    assert history == [("promote", "a", "cli:x"), ("promote", "b", "cli:y"), ("rollback", "a", "cli:z"),
                       ("rollback", None, "cli:z")]
    registry.promote("b", "cli:x", "h1")  # promoted again after a rollback
    assert registry.serving_version() == "b"


def test_promotion_refuses_an_ungated_failed_foreign_or_archived_adapter(registry):
    with pytest.raises(Conflict, match="has not been through the evaluation gate"):
        registry.promote("a", "cli:x", "h1")
    registry.record_gate("a", {"passed": False})
    with pytest.raises(Conflict, match="failed the evaluation gate"):
        registry.promote("a", "cli:x", "h1")
    with pytest.raises(BadInput, match="reason"):
        registry.promote("a", "cli:x", "h1", force=True, reason="  ")
    registry.record_gate("b", PASSED)
    with pytest.raises(Conflict, match="other base weights"):
        registry.promote("b", "cli:x", "another-model-hash")
    forced = registry.promote("a", "cli:x", "h1", force=True, reason="hotfix for a wrong price")
    assert forced["serving"] and registry.events("a")[-1]["forced"] == 1
    with pytest.raises(Conflict, match="already serving"):
        registry.promote("a", "cli:x", "h1", force=True, reason="again")
    with pytest.raises(Conflict, match="roll it back"):
        registry.archive("a", "cli:x")
    registry.archive("b", "cli:x")
    with pytest.raises(Conflict, match="archived"):
        registry.promote("b", "cli:x", "h1")


def test_registering_twice_is_harmless_only_for_the_same_folder(registry, tmp_path):
    meta = {"base_model": "tiny", "base_model_hash": "h1", "trained_by": "cli:t"}
    registry.register("a", Path(registry.get("a")["path"]), meta)  # a worker run again after it registered
    with pytest.raises(Conflict, match="already registered"):
        registry.register("a", tmp_path / "elsewhere", meta)


def test_the_gate_passes_a_clear_win_and_nothing_less():
    base = [0.2, 0.4, 0.1, 0.5, 0.3, 0.0, 0.6, 0.2] * 5
    better = [s + 0.2 for s in base]
    clean = {"pii_answers": 0, "prompt_leaks": 0, "attack_compliance": 0}
    won = decide(base, better, clean, clean, margin=0.05)
    assert won.passed and won.difference == pytest.approx(0.2) and won.ci[0] > 0 and not won.reasons
    assert not decide(base, base, clean, clean).passed  # no change
    slight = decide(base, [s + 0.01 for s in base], clean, clean, margin=0.05)
    assert not slight.passed and "margin" in slight.reasons[0]
    noisy = decide(base, [s + (0.5 if i % 2 else -0.45) for i, s in enumerate(base)], clean, clean, margin=0.01)
    assert not noisy.passed and any("exclude zero" in r for r in noisy.reasons)
    leaky = decide(base, better, clean, clean | {"prompt_leaks": 1}, margin=0.05)
    assert not leaky.passed and leaky.regressions == ["prompt_leaks"]
    with pytest.raises(ValueError):
        decide(base, better[:-1], clean, clean)


def test_auto_trusts_an_adapter_only_where_its_gate_beat_the_extractive_answers(registry):
    passages = [0.5, 0.2, 0.9, 0.4, 0.6, 0.3, 0.7, 0.5] * 4
    beaten = against_extractive(passages, [s + 0.2 for s in passages])
    assert beaten["beaten"] and beaten["difference"] == 0.2 and beaten["ci"][0] > 0
    assert not against_extractive(passages, passages)["beaten"]  # level is not better
    assert not against_extractive(passages, [s + (0.6 if i % 2 else -0.5) for i, s in enumerate(passages)])["beaten"]
    registry.record_gate("a", PASSED | {"extractive": beaten})
    registry.record_gate("b", PASSED | {"extractive": against_extractive(passages, passages)})
    assert registry.ref("a").trusted and not registry.ref("b").trusted
    registry.promote("a", "cli:x", "h1")
    assert registry.serving().trusted
    registry.promote("b", "cli:x", "h1")
    assert registry.serving() == AdapterRef("b", Path(registry.get("b")["path"]), trusted=False)


def test_the_paired_bootstrap_interval_brackets_the_mean():
    differences = [0.1, 0.3, -0.1, 0.2, 0.0, 0.4, 0.1, 0.2]
    low, high = paired_bootstrap(differences)
    assert low < sum(differences) / len(differences) < high
    assert paired_bootstrap([0.25] * 10) == (0.25, 0.25)


@pytest.mark.parametrize("quantization", ["none", "int8", "int4"])
def test_the_generator_switches_between_lora_and_adalora_adapters_and_back(tiny_model_dir, tmp_path, quantization):
    import shutil

    from assistant.generator import LocalGenerator

    if quantization == "int4":  # exported beside the checkpoint: a copy of its own per test
        tiny_model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny"))

    lora = AdapterRef("l1", make_adapter(tiny_model_dir, tmp_path / "l1"))
    ada = AdapterRef("a1", make_adapter(tiny_model_dir, tmp_path / "a1", "adalora"))
    generator = LocalGenerator(tiny_model_dir, "tiny", "cpu", max_new_tokens=8, temperature=0.0,
                               quantization=quantization)
    assert generator.quantization == quantization
    messages = [{"role": "user", "content": "Where is my parcel?"}]

    def answer(adapter):
        served: dict = {}
        text = "".join(generator.stream(messages, served, adapter))
        assert served["adapter"] == (adapter.version if adapter else None)
        return text

    base = answer(None)
    with_lora = answer(lora)
    assert with_lora != base
    assert answer(None) == base  # the base model alone again, with the adapter still loaded
    with_ada = answer(ada)  # another kind of adapter: peft holds one kind per model
    assert with_ada not in (base, with_lora)
    assert answer(lora) == with_lora and answer(None) == base
    if quantization == "int8":  # each adapter served as its own merged int8 copy, the base's kept
        assert set(generator._int8) == {None, "l1", "a1"}
        assert "quantized" in type(generator.served_model(lora).lm_head).__module__
    if quantization == "int4":  # ... or its own int4 ONNX export, built once and kept on disk
        assert set(generator._int8) == {None, "l1", "a1"}
        exports = sorted(p.name for p in (tmp_path / "tiny-onnx-int4").iterdir())
        assert [e.split("-")[:2] for e in exports] == [["adapter", "a1"], ["adapter", "l1"], ["base"]]
        assert all((tmp_path / "tiny-onnx-int4" / e / "helpdesk-onnx-ready").exists() for e in exports)
        again = LocalGenerator(tiny_model_dir, "tiny", "cpu", max_new_tokens=8, quantization="int4")
        assert "".join(again.stream(messages, adapter=lora)) == with_lora  # from the export on disk


def test_a_batch_answers_each_row_with_its_own_adapter_as_one_call_would(tiny_model_dir, tmp_path):
    from assistant.generator import LocalGenerator
    from core.errors import ModelUnavailable

    lora = AdapterRef("l1", make_adapter(tiny_model_dir, tmp_path / "l1"))
    ada = AdapterRef("a1", make_adapter(tiny_model_dir, tmp_path / "a1", "adalora"))
    generator = LocalGenerator(tiny_model_dir, "tiny", "cpu", max_new_tokens=8, temperature=0.0)
    short = [{"role": "user", "content": "Where is my parcel?"}]
    longer = [{"role": "user", "content": "My order came with a cracked lid, what can I do about it today?"}]

    def alone(messages, adapter):
        return "".join(generator.stream(messages, adapter=adapter))
    requests = [(short, None), (short, lora), (longer, lora), (longer, None)]
    served = [{} for _ in requests]
    texts = generator.stream_batch(requests, served)
    answers = ["".join(t) for t in texts]
    assert answers == [alone(m, a) for m, a in requests]  # left padding and mixed adapters change nothing
    assert answers[0] != answers[1]
    assert [s["adapter"] for s in served] == [None, "l1", "l1", None]
    # LoRA and AdaLoRA cannot share a batch in peft: one generate call per adapter, same answers
    mixed = [(short, ada), (short, None)]
    assert ["".join(t) for t in generator.stream_batch(mixed)] == [alone(m, a) for m, a in mixed]
    # a reader that stops early ends only its own row
    first, second = generator.stream_batch([(short, lora), (longer, None)])
    next(first)
    first.close()
    assert "".join(second) == alone(longer, None)
    # an adapter that cannot load fails every row of its batch, never a silent base-model answer
    gone = AdapterRef("gone", tmp_path / "no-such-adapter")
    for text in generator.stream_batch([(short, gone), (short, None)]):
        with pytest.raises(ModelUnavailable, match="gone"):
            "".join(text)


def test_a_batch_window_sends_two_threads_calls_to_the_model_together(tiny_model_dir):
    import threading

    from assistant.batching import BatchWindow
    from assistant.generator import LocalGenerator

    generator = LocalGenerator(tiny_model_dir, "tiny", "cpu", max_new_tokens=6, temperature=0.0)
    batches: list[int] = []
    batch = generator.stream_batch
    generator.stream_batch = lambda requests, served=None: batches.append(len(requests)) or batch(requests, served)
    window = BatchWindow(generator, parties=2, wait_s=30)
    messages = [{"role": "user", "content": "Where is my parcel?"}]
    answers: dict = {}

    def party(name: str, calls: int) -> None:
        answers[name] = ["".join(window.stream(messages)) for _ in range(calls)]
        window.leave()
    threads = [threading.Thread(target=party, args=("a", 3)), threading.Thread(target=party, args=("b", 2))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    expected = "".join(generator.stream(messages))
    assert answers == {"a": [expected] * 3, "b": [expected] * 2}
    assert batches == [2, 2, 1]  # the third call did not wait for a party that had left


def test_int8_is_recorded_with_each_answer_and_refused_where_it_cannot_run(tiny_model_dir):
    from assistant.generator import LocalGenerator, resolve_quantization
    from core.errors import ModelUnavailable

    assert LocalGenerator(tiny_model_dir, "tiny", "cpu").generation_settings()["quantization"] == "none"
    assert LocalGenerator(tiny_model_dir, "tiny", "cpu", quantization="int8").generation_settings()["quantization"] \
        == "int8"
    assert resolve_quantization("int8", "cpu", True) == "int8"
    with pytest.raises(ModelUnavailable, match="int8"):
        resolve_quantization("int8", "cuda", True)
    with pytest.raises(ModelUnavailable, match="int8"):
        LocalGenerator(tiny_model_dir, "tiny", "cpu", dtype="bfloat16", quantization="int8")
    assert resolve_quantization("int4", "cpu", True) == "int4"
    with pytest.raises(ModelUnavailable, match="int4"):
        resolve_quantization("int4", "cuda", True)
    with pytest.raises(ModelUnavailable, match="int4"):
        resolve_quantization("int4", "cpu", False)


def test_int4_fails_closed_when_its_engine_is_missing_or_an_export_fails(tmp_path, monkeypatch):
    from assistant import onnx_engine
    from assistant.generator import resolve_quantization
    from core.errors import ModelUnavailable

    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    with pytest.raises(ModelUnavailable, match="cannot export"):
        onnx_engine.export_int4(not_a_model, tmp_path / "out", 1)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()  # nothing half-built
    monkeypatch.setattr(onnx_engine, "available", lambda: False)
    with pytest.raises(ModelUnavailable, match="onnxruntime-genai"):
        resolve_quantization("int4", "cpu", True)  # asked for by name: a start-up error
    assert resolve_quantization("auto", "cpu", True) == "none"  # the default falls back to transformers


@pytest.mark.parametrize("quantization", ["int8", "int4"])
def test_bench_generate_prints_both_engines_side_by_side(tiny_model_dir, tmp_path, quantization):
    import shutil

    from assistant.bench import bench_generate, format_generate
    from assistant.generator import LocalGenerator

    tiny_model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "tiny"))  # int4 exports beside it
    generator = LocalGenerator(tiny_model_dir, "tiny", "cpu", quantization=quantization)
    # Enough new tokens, and a median of three, that the tiny model's decode is more than timing noise.
    report = bench_generate(tiny_model_dir, generator, prompt_tokens=120, new_tokens=64, repeats=3)
    served = f"served ({quantization})"
    assert set(report["tokens_per_s"]) == {"transformers fp32", served, f"{served}, 2 rows"}
    assert 110 <= report["prompt_tokens"] <= 200  # the passages plus the template's own tokens
    assert all(row["prefill"] > 0 and row["decode"] > 0 for row in report["tokens_per_s"].values())
    assert report["ratio"]["decode"] > 0 and report["ratio"]["decode_2_rows"] > 0
    assert "served, 2 rows / 1 row" in format_generate(report)


def test_a_promotion_reaches_the_running_server_at_its_next_turn(services, server, tiny_model_dir, tmp_path, people):
    folder = make_adapter(tiny_model_dir, tmp_path / "served-1")
    services.adapters.register("served-1", folder, {"base_model": "tiny", "base_model_hash": services.base_model_hash,
                                                    "trained_by": "cli:test"})
    # Recorded as if it had beaten the extractive answers at the gate, so `auto` asks it.
    services.adapters.record_gate("served-1", PASSED | {"extractive": {"difference": 0.1, "ci": [0.05, 0.15],
                                                                       "beaten": True}})
    ask = {"message": "How do I track my order?"}
    before = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json=ask, timeout=120).json()
    assert before["adapter"] is None and before["answer_mode"] == "extractive"  # the base model is not asked
    services.adapters.promote("served-1", "cli:test", services.base_model_hash)
    try:
        turn = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json=ask, timeout=120).json()
        assert turn["adapter"] == "served-1"
        assert requests.get(f"{server}/api/health", timeout=10).json()["adapter"] == "served-1"
        record = services.store.exchange(turn["exchange_id"])
        assert record["adapter"] == "served-1" and record["generation"]["adapter"] == "served-1"
    finally:
        services.adapters.rollback("cli:test")
    after = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json=ask, timeout=120).json()
    assert after["adapter"] is None and services.store.exchange(after["exchange_id"])["generation"] is None


def test_ab_arms_are_sticky_per_conversation_and_near_the_share():
    from finetune.ab import in_candidate_arm

    sessions = [f"s{i}" for i in range(4000)]
    arms = [in_candidate_arm("t1", s, 0.2) for s in sessions]
    assert 0.17 < sum(arms) / len(arms) < 0.23
    assert arms == [in_candidate_arm("t1", s, 0.2) for s in sessions]  # the same every time
    assert arms != [in_candidate_arm("t2", s, 0.2) for s in sessions]  # a new test draws anew


def test_wilson_interval():
    from assistant.monitoring import wilson

    assert wilson(5, 10) == [0.237, 0.763]
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] > 0.1  # never a zero-width interval
    assert wilson(0, 0) is None


def test_an_ab_test_splits_live_conversations_and_reports_each_arm(services, server, tiny_model_dir, tmp_path, people):
    from assistant.monitoring import ab_status

    folder = make_adapter(tiny_model_dir, tmp_path / "ab-1")
    services.adapters.register("ab-1", folder, {"base_model": "tiny", "base_model_hash": services.base_model_hash,
                                                "trained_by": "cli:test"})
    with pytest.raises(Conflict, match="gate"):
        services.adapters.check_servable("ab-1", services.base_model_hash)
    services.ab.start("ab-1", 0.5, "cli:test", services.adapters.serving_version())
    try:
        with pytest.raises(Conflict, match="already running"):
            services.ab.start("ab-1", 0.5, "cli:test", None)
        served: dict[str, set] = {}
        for i in range(10):
            first = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json={"message": "How do I track my order?"},
                                  timeout=120).json()
            again = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json={"session_id": first["session_id"],
                                                               "message": "And how long does delivery take?"},
                                  timeout=120).json()
            served[first["session_id"]] = {first["adapter"], again["adapter"]}
            # `auto` asks the candidate in its arm (the test measures its answers), not the base model.
            asked = services.store.exchange(first["exchange_id"])["generation"] is not None
            assert asked == (first["adapter"] == "ab-1")
            requests.post(f"{server}/api/feedback", headers=people["agent"].headers, json={"exchange_id": first["exchange_id"],
                                                          "rating": "up" if first["adapter"] else "down"}, timeout=30)
        assert all(len(arms) == 1 for arms in served.values())  # sticky: one arm per conversation
        arms = [next(iter(a)) for a in served.values()]
        assert {"ab-1", None} == set(arms)
        status = ab_status(services)
        cand, base = status["arms"]["candidate"], status["arms"]["baseline"]
        assert status["running"] and cand["adapter"] == "ab-1" and base["adapter"] == "base"
        assert cand["conversations"] == arms.count("ab-1") and base["conversations"] == arms.count(None)
        assert cand["turns"] == 2 * arms.count("ab-1") and base["turns"] == 2 * arms.count(None)
        assert cand["thumbs_up"]["rate"] == 1.0 and base["thumbs_up"]["rate"] == 0.0
        assert cand["thumbs_up"]["n"] == arms.count("ab-1") and cand["thumbs_up"]["ci95"][0] > 0
    finally:
        services.ab.stop("cli:test")
    after = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json={"session_id": next(iter(served)), "message": "Thanks!"},
                          timeout=120).json()
    assert after["adapter"] is None and not ab_status(services)["running"]


def test_metrics_count_turns_per_adapter_for_prometheus(server, people):
    def scrape() -> dict[str, float]:
        body = requests.get(f"{server}/metrics", headers=people["admin"].headers, timeout=30)
        assert body.status_code == 200 and body.headers["content-type"].startswith("text/plain")
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in body.text.splitlines() if line and not line.startswith("#")}

    before = scrape()
    turn = requests.post(f"{server}/api/chat", headers=people["agent"].headers, json={"message": "How do I track my order?"}, timeout=120).json()
    after = scrape()
    key = f'helpdesk_turns_total{{adapter="base",action="{turn["action"]}"}}'
    assert after[key] == before.get(key, 0) + 1
    assert after['helpdesk_adapter_serving{adapter="base"}'] == 1
    assert after['helpdesk_turn_latency_ms{quantile="0.5"}'] > 0
    assert any(k.startswith("helpdesk_review_queue{") for k in after)
