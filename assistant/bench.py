"""Benchmarks: figures printed, never asserted. Medians and p95 from one run, side by side."""
from __future__ import annotations

import logging
import statistics
from typing import Iterable, Iterator, Sequence

log = logging.getLogger(__name__)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summarise(samples: Iterable[dict[str, float]]) -> dict[str, dict[str, float]]:
    by_stage: dict[str, list[float]] = {}
    for sample in samples:
        for stage, ms in sample.items():
            by_stage.setdefault(stage, []).append(ms)
    return {
        stage: {"p50": round(statistics.median(v), 1), "p95": round(percentile(v, 0.95), 1), "n": len(v)}
        for stage, v in by_stage.items()
    }


def bench_turns(services, questions: list[dict], n: int) -> dict:
    """Run `n` sample questions as full turns; latency per stage and how often the right article is cited."""
    assistant = services.assistant
    assistant.respond(None, "warm-up: how do returns work?")  # first call pays one-off costs
    samples, cited = [], 0
    for q in questions[:n]:
        result = assistant.respond(None, q["question"])
        samples.append(result.latency_ms)
        cited += q["source"] in [h.source for h in result.sources]
        log.info("%s -> %s (%.0f ms)", q["question"][:50], result.action, result.latency_ms["total"])
    return {
        "turns": len(samples),
        "model": services.settings.model.name,
        "device": services.generator.device,
        "max_new_tokens": services.settings.model.max_new_tokens,
        "right_article_in_sources": round(cited / max(1, len(samples)), 3),
        "latency_ms": summarise(samples),
    }


def bench_prompt(tokenizer, prompt_tokens: int) -> dict:
    """A chat prompt of about `prompt_tokens` tokens: help-article text as passages, the way a
    turn's prompt is mostly passages."""
    from assistant.app import SAMPLE_KB

    text = " ".join(p.read_text(encoding="utf-8") for p in sorted(SAMPLE_KB.glob("*.md")))
    ids = tokenizer(text)["input_ids"][:prompt_tokens]
    messages = [{"role": "system", "content": "Answer from the passages."},
                {"role": "user", "content": tokenizer.decode(ids) + "\n\nHow do returns work?"}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)


def _timed_generate(model, inputs, new_tokens: int, pad_token_id: int, repetition_penalty: float) -> float:
    import time

    import torch

    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                       repetition_penalty=repetition_penalty, pad_token_id=pad_token_id)
    return time.perf_counter() - start


def bench_generate(model_dir, generator, prompt_tokens: int, new_tokens: int, repeats: int) -> dict:
    """Prefill and decode tokens/s of plain transformers `generate` (fp32) and of the network the
    generator serves, measured alternately in one process: prefill is a one-token generation over
    the prompt; decode is the extra time of `new_tokens` more, greedy, never stopping early."""
    import torch
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    served = generator.served_model(None)
    tokenizer = generator.tokenizer
    inputs = bench_prompt(tokenizer, prompt_tokens)
    pad = tokenizer.pad_token_id or tokenizer.eos_token_id
    penalty = generator.repetition_penalty
    served_name = f"served ({generator.quantization})"
    pair_name = f"{served_name}, 2 rows"
    pair = {k: v.repeat(2, 1) for k, v in inputs.items()}
    # Each network runs where it would: plain transformers on this thread, the served one on the
    # generator's model thread. The pair is the served network on two prompts at once, as the
    # evaluation gate decodes its two arms (tokens/s counts both rows).
    arms = {"transformers fp32": (plain, lambda fn: fn(), inputs),
            served_name: (served, generator.on_model_thread, inputs),
            pair_name: (served, generator.on_model_thread, pair)}
    times: dict[str, dict[str, list[float]]] = {name: {"prefill": [], "decode": []} for name in arms}

    def timed(name: str, n: int) -> float:
        model, run, prompt = arms[name]
        return run(lambda: _timed_generate(model, prompt, n, pad, penalty))
    for name in arms:  # warm-up: first calls pay for allocation and kernel choice
        timed(name, 2)
    for _ in range(repeats):
        for name, (_, _, prompt) in arms.items():
            one = timed(name, 1)
            more = timed(name, 1 + new_tokens)
            batch, length = prompt["input_ids"].shape
            times[name]["prefill"].append(batch * length / one)
            times[name]["decode"].append(batch * new_tokens / max(1e-9, more - one))
    rows = {name: {k: round(statistics.median(v), 1) for k, v in t.items()} for name, t in times.items()}
    base, mine, pair_row = rows["transformers fp32"], rows[served_name], rows[pair_name]
    return {"model": generator.model_name, "device": generator.device, "threads": torch.get_num_threads(),
            "prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens": new_tokens, "repeats": repeats,
            "tokens_per_s": rows,
            "ratio": {"prefill": round(mine["prefill"] / base["prefill"], 2),
                      "decode": round(mine["decode"] / base["decode"], 2),
                      "decode_2_rows": round(pair_row["decode"] / mine["decode"], 2)}}


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], first: int) -> str:
    """A title, then columns: the first left-aligned in `first` characters, the rest right-aligned."""
    lines = [title] + [f"{row[0]:{first}} " + " ".join(f"{cell:>13}" for cell in row[1:])
                       for row in [columns, *rows]]
    return "\n".join(lines)


def format_generate(report: dict) -> str:
    rows = [(name, f"{row['prefill']:.1f}", f"{row['decode']:.1f}") for name, row in report["tokens_per_s"].items()]
    rows.append(("served / transformers", f"{report['ratio']['prefill']:.2f}x", f"{report['ratio']['decode']:.2f}x"))
    rows.append(("served, 2 rows / 1 row", "", f"{report['ratio']['decode_2_rows']:.2f}x"))
    return _table(f"{report['model']} on {report['device']} ({report['threads']} threads), {report['prompt_tokens']}"
                  f"-token prompt, {report['new_tokens']} new tokens, median of {report['repeats']}",
                  ("engine", "prefill tok/s", "decode tok/s"), rows, 24)


def format_table(report: dict) -> str:
    return _table(f"{report['turns']} turns, model {report['model']} on {report['device']}, max_new_tokens "
                  f"{report['max_new_tokens']}, right article cited {report['right_article_in_sources']:.0%}",
                  ("stage", "p50 ms", "p95 ms"),
                  [(stage, f"{v['p50']:.1f}", f"{v['p95']:.1f}") for stage, v in report["latency_ms"].items()], 14)


def synthetic_corpus(folder, chunks: int, chunk_chars: int, seed: int = 0) -> None:
    """Markdown files of ten sections each; one section fits one chunk. Words come from the
    sample knowledge base, so the text has help-centre vocabulary without repeating it."""
    import random
    from pathlib import Path

    from assistant.app import SAMPLE_KB

    rng = random.Random(seed)
    words = [w for p in sorted(SAMPLE_KB.glob("*.md")) for w in p.read_text(encoding="utf-8").split() if w.isalpha()]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(max(1, chunks // 10)):
        parts = [f"# Synthetic article {d}"]
        for s in range(10):
            body: list[str] = []
            while sum(len(w) + 1 for w in body) < chunk_chars:
                body.append(rng.choice(words))
            parts.append(f"## Section {s} {rng.choice(words)}\n\n{' '.join(body)} code-{d}-{s}.")
        (folder / f"doc-{d:06d}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def bench_retrieval(settings, sizes: list[int], queries: int, chunk_chars: int,
                    precisions: Sequence[str] = ("fp32",)) -> Iterator[dict]:
    """Ingest generated corpora of each size into a fresh store; ingestion chunks/s and
    hybrid query latency, for each embedding precision in turn on the same corpus.
    Nothing is written to the real data directory. Yields each report as it is measured:
    a 100k-chunk corpus takes about half an hour."""
    import itertools
    import random
    import tempfile
    import time
    from pathlib import Path

    from assistant.app import Services

    for size, precision in itertools.product(sizes, precisions):
        with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
            retrieval = settings.retrieval.model_copy(update={"embedding_precision": precision})
            run_settings = settings.model_copy(
                update={"home": Path(tmp) / "home", "ingest_samples": False, "retrieval": retrieval})
            services = Services(run_settings)
            services.kb_embedder.embed(["warm-up"])
            services.guard  # noqa: B018  (load Presidio and Chroma before the clock starts)
            services.ingestor.warm_up()  # and the embedding process, as in a running server
            synthetic_corpus(Path(tmp) / "corpus", size, chunk_chars)
            started = time.perf_counter()
            summary = services.ingest([Path(tmp) / "corpus"])
            ingest_s = time.perf_counter() - started
            sample = services.vectors.collection.get(limit=256, include=["documents"])["documents"]
            embed_only = _embed_only(services, sample)
            rng = random.Random(1)
            words = [w for w in (Path(tmp) / "corpus" / "doc-000000.md").read_text().split() if w.isalpha()]
            texts = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(queries)]
            started = time.perf_counter()
            services.retriever.search(texts[0])  # builds the BM25 index once
            index_ms = (time.perf_counter() - started) * 1000
            timings = {mode: [] for mode in ("vector", "hybrid")}
            for text in texts:
                for mode in timings:
                    services.kb_embedder.forget_recent()  # each mode pays for its own query embedding
                    t0 = time.perf_counter()
                    services.retriever.search(text, mode=mode)
                    timings[mode].append((time.perf_counter() - t0) * 1000)
            report = {
                "chunks": summary.chunks_added,
                "precision": precision,
                "ingest_s": round(ingest_s, 1),
                "ingest_chunks_per_s": round(summary.chunks_added / ingest_s, 1),
                "embed_only_chunks_per_s": round(embed_only, 1),
                "bm25_build_ms": round(index_ms, 1),
                **{f"{mode}_p50_ms": round(statistics.median(v), 1) for mode, v in timings.items()},
                **{f"{mode}_p95_ms": round(percentile(v, 0.95), 1) for mode, v in timings.items()},
            }
            log.info("bench retrieval: %s", report)
            yield report


def _embed_only(services, sample: list[str]) -> float:
    """Chunks/s of the embedding model alone on stored chunks, run as ingestion runs it (in
    each of the pool's processes at once, or in-process without one): the ceiling ingestion
    works under."""
    import time

    pool = services.ingestor.pool
    processes = pool.ready() if pool is not None else []
    started = time.perf_counter()
    if not processes:
        services.kb_embedder.embed(sample)
        return len(sample) / (time.perf_counter() - started)
    sent = [p for p in processes if p.send(sample)]
    for process in sent:
        process.receive()
    return len(sent) * len(sample) / (time.perf_counter() - started)


def bench_guard(services, n: int = 200, seed: int = 0) -> dict:
    """Input guard latency on 60-word messages, side by side with bare Presidio analyze + anonymize
    (same spaCy model, default recognizers) on the same messages in the same run."""
    import random
    import time
    import uuid

    from presidio_analyzer import AnalyzerEngine
    from presidio_anonymizer import AnonymizerEngine

    from guardrails.evaluate import generate_pii_set
    from guardrails.redaction import nlp_engine

    rng = random.Random(seed)
    filler = ("please could you check this for me because the parcel was supposed to arrive last week and "
              "nobody has told me anything about the delay or the refund I was promised by your colleague").split()
    messages = []
    for row in generate_pii_set(n, seed):
        words = row["text"].split()
        while len(words) < 60:
            words.insert(rng.randrange(len(words) + 1), rng.choice(filler))
        messages.append(" ".join(words[:60]))
    guard = services.guard
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine(services.settings.guardrails.spacy_model),
                              supported_languages=["en"])
    anonymizer = AnonymizerEngine()
    session = "bench-" + uuid.uuid4().hex
    guard.inspect_input(messages[0], session)
    anonymizer.anonymize(messages[0], analyzer.analyze(messages[0], language="en"))
    ours, bare = [], []
    for text in messages:  # interleaved, so machine noise hits both alike
        t0 = time.perf_counter()
        guard.inspect_input(text, session)
        t1 = time.perf_counter()
        anonymizer.anonymize(text, analyzer.analyze(text, language="en"))
        t2 = time.perf_counter()
        ours.append((t1 - t0) * 1000)
        bare.append((t2 - t1) * 1000)
    services.vault.forget(session)
    return {
        "messages": n,
        "words": 60,
        "guard_p50_ms": round(statistics.median(ours), 1),
        "guard_p95_ms": round(percentile(ours, 0.95), 1),
        "presidio_p50_ms": round(statistics.median(bare), 1),
        "presidio_p95_ms": round(percentile(bare, 0.95), 1),
        "ratio_p50": round(statistics.median(ours) / statistics.median(bare), 2),
        "checks": [c.name for c in guard.input_checks],
    }
