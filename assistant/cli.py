"""The `helpdesk` command line. With --json every command prints JSON only on stdout.

Errors: one line on stderr and a non-zero exit status.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from assistant.cli_adapters import add_gate_options, print_gate
from assistant.cli_adapters import add_parsers as add_adapter_parsers
from assistant.cli_users import add_parsers as add_user_parsers
from assistant.cli_common import actor_of as _actor
from assistant.cli_common import emit as _emit
from assistant.cli_common import offline_env as _offline_env
from assistant.cli_common import open_services as _services
from core.db import storage_fault
from core.errors import BadInput, HelpdeskError
from retrieval.search import MODES

log = logging.getLogger("helpdesk")


def _filters(pairs: list[str] | None) -> dict | None:
    """--filter key=value (repeatable) -> a Chroma metadata filter; numbers stay numbers."""
    from core.errors import BadInput

    if not pairs:
        return None
    clauses = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"--filter {pair!r}: expected KEY=VALUE, e.g. doc_type=pdf")
        clauses.append({key: int(value) if value.isdigit() else value})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def cmd_ingest(args) -> int:
    summary = _services(args).documents.ingest(_actor(args), args.paths).as_dict()
    if args.json:
        _emit({k: summary[k] for k in ("files", "chunks_added", "chunks_unchanged", "errors", "pii_redacted")})
    else:
        print(f"{summary['files']} files: {summary['chunks_added']} chunks added, "
              f"{summary['chunks_unchanged']} unchanged, {summary['pii_redacted']} PII spans redacted")
        for err in summary["errors"]:
            print(f"  error: {err['path']}: {err['error']}")
    return 1 if summary["errors"] and not summary["files"] else 0


def cmd_docs_list(args) -> int:
    documents = _services(args).documents.list(_actor(args))
    if args.json:
        _emit({"documents": [
            {k: d[k] for k in ("source", "title", "doc_type", "chunks", "pii_redacted", "file_hash", "ingested_at")}
            for d in documents
        ]})
    else:
        for d in documents:
            print(f"{d['chunks']:5d}  {d['source']}  ({d['title']})")
    return 0


def cmd_docs_reembed(args) -> int:
    """Convert a collection to the configured embedding precision, from the chunk texts it stores."""
    from retrieval.store import VectorStore, make_client

    services = _services(args)
    r = services.settings.retrieval
    store = VectorStore(make_client(services.settings.chroma_dir, r.chroma_host, r.chroma_port), r.collection)
    before = store.precision()
    count = store.reembed(services.kb_embedder)
    if args.json:
        _emit({"collection": r.collection, "chunks": count, "from": before, "to": r.precision})
    else:
        print(f"{r.collection}: {count} chunks re-embedded, {before or 'empty'} -> {r.precision}")
    return 0


def cmd_docs_remove(args) -> int:
    removed = _services(args).documents.remove(_actor(args), args.source)
    if args.json:
        _emit({"source": args.source, "chunks_removed": removed})
    else:
        print(f"removed {args.source}: {removed} chunks")
    return 0


def cmd_search(args) -> int:
    hits = _services(args).documents.search(_actor(args), args.query, args.k, args.mode, _filters(args.filter))
    if args.json:
        _emit({"hits": [h.as_dict() for h in hits]})
    else:
        for h in hits:
            first = h.text.splitlines()[0] if h.text else ""
            print(f"{h.score:.3f}  {h.source}  {first}")
    return 0


def cmd_ask(args) -> int:
    services = _services(args)
    assistant = services.assistant
    services.ensure_samples()
    if args.json:
        _emit(assistant.respond(args.session, args.text, _actor(args)).as_dict())
        return 0
    from assistant.service import Done, Token

    streamed = ""
    for event in assistant.stream(args.session, args.text, _actor(args)):
        if isinstance(event, Token):
            print(event.text, end="", flush=True)
            streamed += event.text
        elif isinstance(event, Done):
            r = event.result
            if streamed.strip() != r.answer:  # blocked or rewritten by the output checks
                print(("\n[replaced by the output checks]\n" if streamed else "") + r.answer, end="")
            print(f"\n\n[{r.action}{': ' + ', '.join(r.reasons) if r.reasons else ''}]")
            for h in r.sources:
                print(f"  source: {h.source} ({h.score:.2f})")
            print(f"  exchange {r.exchange_id}, session {r.session_id}")
    return 0


def _stateless_guard(args):
    """A guard without the vault: plain <TYPE> placeholders, nothing stored. Trained heads are
    cached in the data directory as usual."""
    from core.settings import load_settings
    from guardrails.guard import Guard

    settings = load_settings(args.config)
    g = settings.guardrails
    return Guard.from_file(g.policy, g.spacy_model, cache_dir=settings.classifier_dir)


def cmd_redact(args) -> int:
    guard = _stateless_guard(args)

    def one(text: str) -> dict:
        redacted, entities = guard.redact(text)
        return {"redacted": redacted, "entities": [e.as_dict() for e in entities]}

    if args.text == "-":
        for line in sys.stdin:
            _emit(one(line.rstrip("\n")))
        return 0
    result = one(args.text)
    if args.json:
        _emit(result)
    else:
        print(result["redacted"])
    return 0


def cmd_guard(args) -> int:
    """Input verdicts for one message per line: offline evaluation of the policy by anyone."""
    guard = _stateless_guard(args)
    texts = (line.rstrip("\n") for line in sys.stdin) if args.text == "-" else [args.text]
    for text in texts:
        verdict = guard.inspect_input(text)
        _emit({"action": verdict.action.value, "reasons": list(verdict.reasons),
               "redacted": verdict.redacted_text, "scores": dict(verdict.scores)})
    return 0


def cmd_log(args) -> int:
    services = _services(args)
    for row in services.store.exchanges(limit=args.limit):
        if args.json:
            item = services.review.item(row["id"])
            _emit({**row, "feedback": services.feedback.for_exchange(row["id"]),
                   "review": {k: item[k] for k in ("status", "reasons", "decision", "decided_by", "decided_at")}
                   if item else None})
        else:
            print(f"{row['created_at']}  {row['action']:5}  {row['redacted_input'][:60]!r} -> {row['answer'][:60]!r}")
    return 0


def cmd_feedback(args) -> int:
    given = _services(args).feedback.give(_actor(args), args.exchange_id, args.rating, args.reason, args.correction)
    if args.json:
        _emit(given.as_dict())
    else:
        print(f"feedback {given.feedback_id}: {given.rating}"
              f"{' (' + given.reason + ')' if given.reason else ''} on {given.exchange_id}")
        if given.correction:
            print(f"correction as stored: {given.correction}")
    return 0


LIST_KEYS = ("exchange_id", "status", "reasons", "rating", "created_at")


def cmd_dataset_build(args) -> int:
    built = _services(args).datasets.build(_actor(args))
    if args.json:
        _emit({k: v for k, v in built.as_dict().items() if k in ("version", "rows", "path")})
    else:
        print(f"dataset {built.version}: {built.rows['sft']} SFT, {built.rows['dpo']} DPO, {built.rows['kto']} KTO "
              f"rows in {built.path}")
        for kind, split in built.splits.items():
            print(f"  {kind}: {split['train']} train, {split['eval']} eval")
    return 0


def cmd_dataset_synthesize(args) -> int:
    services = _services(args)
    services.ensure_samples()
    made = services.datasets.synthesize(_actor(args), args.distractors)
    if args.json:
        _emit(made)
    else:
        print(f"{made['rows']} synthetic rows from {made['chunks']} chunks in {made['path']} "
              "(the next `helpdesk dataset build` includes them)")
    return 0


def cmd_dataset_corrections(args) -> int:
    """Labelled questions asked as real, logged turns, each rated against its reference answer
    and corrected with it when wrong: what agents would do, so a first adapter can learn from
    the company's own questions (use a split the gate does not evaluate on)."""
    from pathlib import Path

    from assistant.datasets import ABSTAIN_ANSWER
    from assistant.evaluate import SPLITS, abstained, correct, load_items
    from core.errors import BadInput

    if Path(args.questions).resolve() == SPLITS["held-out"].resolve():
        raise BadInput("that is the held-out split the evaluation gate measures on: train on another file")
    services = _services(args)
    services.ensure_samples()
    # Extractive by default: the prompts are logged in every mode, and no model time is spent.
    assistant = services.assistant_for(services.store, args.mode, services.serving_adapter)
    # An unanswerable question is rated up when the assistant said it does not know, and corrected
    # to that when it answered: an adapter must learn to abstain beside passages that do not answer.
    items = [i for i in load_items(Path(args.questions)) if i.get("answer") or i.get("answerable", True) is False]
    actor = _actor(args)
    counts = {"asked": 0, "up": 0, "corrected": 0}
    for item in items[:args.limit] if args.limit else items:
        result = assistant.respond(None, item["question"], actor)
        counts["asked"] += 1
        answerable = item.get("answerable", True) is not False
        if correct(result, item["facts"]) if answerable else abstained(result):
            services.feedback.give(actor, result.exchange_id, "up")
            counts["up"] += 1
        elif result.action != "block":
            services.feedback.give(actor, result.exchange_id, "down", "wrong",
                                   item["answer"] if answerable else ABSTAIN_ANSWER)
            counts["corrected"] += 1
    _emit(counts) if args.json else print(f"asked {counts['asked']}: {counts['up']} rated up, {counts['corrected']} "
                                          "corrected (the next `helpdesk dataset build` includes them)")
    return 0


def cmd_review_list(args) -> int:
    items = _services(args).review.queue(_actor(args), args.status, args.reason, args.action, args.rating,
                                         args.adapter, args.since, args.until, args.limit)
    for item in items:
        if args.json:
            _emit({k: item[k] for k in LIST_KEYS} | {"action": item["action"], "decision": item["decision"],
                                                      "claimed_by": item["claimed_by"]})
        else:
            print(f"{item['exchange_id']}  {item['status']:8} {item['created_at'][:19]}  {item['action']:7} "
                  f"{','.join(item['reasons'])}{'  ' + item['decision'] if item['decision'] else ''}")
    return 0


def _print_item(item: dict) -> None:
    print(f"{item['exchange_id']}: {item['status']}{' (' + item['decision'] + ')' if item['decision'] else ''}, "
          f"reasons {', '.join(item['reasons'])}"
          f"{', claimed by ' + item['claimed_by'] + ' until ' + item['claim_expires_at'] if item['claimed_by'] else ''}")


def cmd_review_show(args) -> int:
    shown = _services(args).review.show(_actor(args), args.exchange_id)
    if args.json:
        _emit(shown)
        return 0
    _print_item(shown)
    for turn in shown["conversation"]:
        mark = "»" if turn["id"] == args.exchange_id else " "
        print(f"{mark} Q: {turn['redacted_input']}\n  A: {turn['answer']}  [{turn['action']}: "
              f"{', '.join(turn['reasons']) or 'ok'}]")
    for i, s in enumerate(shown["exchange"]["sources"], 1):
        print(f"  [{i}] {s['source']} ({s['score']:.2f}) {s.get('text', '')[:160]!r}")
    for f in shown["feedback"]:
        print(f"  feedback {f['rating']} by {f['actor_id']}: {f['reason'] or ''} {f['correction'] or ''}")
    for d in shown["decisions"]:
        print(f"  {d['created_at'][:19]} {d['decision']} by {d['actor_id']}: {d['note'] or ''}")
    return 0


def cmd_review_claim(args) -> int:
    item = _services(args).review.claim(_actor(args), args.exchange_id)
    _emit(item) if args.json else _print_item(item)
    return 0


def cmd_review_decide(args) -> int:
    item = _services(args).review.decide(_actor(args), args.exchange_id, args.decision, args.answer, args.note,
                                         args.label)
    _emit(item) if args.json else _print_item(item)
    return 0


def cmd_review_reopen(args) -> int:
    item = _services(args).review.reopen(_actor(args), args.exchange_id, args.note)
    _emit(item) if args.json else _print_item(item)
    return 0


def cmd_eval_retrieval(args) -> int:
    from pathlib import Path

    from retrieval.evaluate import SAMPLE_QUESTIONS, evaluate, load_questions

    if args.loaders:
        from assistant.compare import compare_loaders

        names = ["helpdesk", "langchain"] if args.loaders == "both" else [args.loaders]
        for report in compare_loaders(_services(args).settings, names, args.mode):
            _emit(report) if args.json else print("  ".join(f"{k}={v}" for k, v in report.items()), flush=True)
        return 0
    services = _services(args)
    services.ensure_samples()
    questions = load_questions(Path(args.questions) if args.questions else SAMPLE_QUESTIONS)
    modes = [args.mode] if args.mode else list(MODES)
    for mode in modes:  # same questions, same index, one run: the modes compare side by side
        report = {**evaluate(lambda q, k: services.retriever.search(q, k, mode), questions), "mode": mode}
        if args.json:
            _emit(report)
        else:
            print("  ".join(f"{k}={v}" for k, v in report.items()))
    return 0


def cmd_eval_answers(args) -> int:
    """Full governed turns on labelled questions: answered, correct, cited, abstain, follow-ups, latency."""
    from pathlib import Path

    from assistant.evaluate import MODES as ANSWER_MODES
    from assistant.evaluate import SPLITS, eval_answers

    files = {Path(f).name: Path(f) for f in args.questions} if args.questions else SPLITS
    modes = [args.mode] if args.mode else list(ANSWER_MODES)
    for report in eval_answers(_services(args), files, modes, args.limit):
        if args.json:
            _emit(report)
        else:
            q, c, lat = report["questions"], report["cited"], report["latency_ms"]
            print(f"{q['file']:>14} {report['mode']:10} answered={report['answered']} correct={report['correct']} "
                  f"token_f1={report['token_f1']} cited_first={c['first']} cited_any={c['any']} "
                  f"abstain={report['abstain']} followup_correct={report['followup_correct']} "
                  f"latency_p50={lat['p50']}ms p95={lat['p95']}ms ({q['items']} items)", flush=True)
    return 0


def cmd_eval_guardrails(args) -> int:
    from guardrails.evaluate import evaluate_guardrails

    services = _services(args)
    if args.every < 1:
        raise BadInput("--every: 1 or more")
    report = evaluate_guardrails(services.guard, services.embedder, args.pii_sentences, args.every)
    if args.json:
        _emit(report)
        return 0
    fa = report["false_alarms"]
    print("False alarms on held-out ordinary messages with trigger words (flagged, handed off or blocked)")
    for name in [k for k in fa if k.endswith(".jsonl")]:
        m = fa[name]
        print(f"  {name:26} {m['alarm_rate']:.3f} of {m['messages']}  {m['by_reason']}")
    for label in ("angry", "distressed", "human_request"):
        m = fa[f"{label}_recall"]
        print(f"  held-out {label:14} caught {m['caught']:.3f}, as meant {m['as_meant']:.3f} (n={m['messages']})")
    dev = report["false_alarms_dev"]
    print("The same on the dev sets the policy was tuned on")
    for name in [k for k in dev if k.endswith(".jsonl")]:
        print(f"  {name:26} {dev[name]['alarm_rate']:.3f} of {dev[name]['messages']}  {dev[name]['by_reason']}")
    for label in ("angry", "distressed", "human_request"):
        m = dev[f"{label}_recall"]
        print(f"  dev {label:19} caught {m['caught']:.3f}, as meant {m['as_meant']:.3f} (n={m['messages']})")
    print(f"PII ({report['pii']['overall']['sentences']} generated sentences)")
    for kind, m in report["pii"].items():
        if kind != "overall":
            print(f"  {kind:15} P {m['precision']:.3f}  R {m['recall']:.3f}  F2 {m['f2']:.3f}  (n={m['gold']})")
    o = report["pii"]["overall"]
    print(f"  {'overall':15} P {o['precision']:.3f}  R {o['recall']:.3f}  F2 {o['f2']:.3f}")
    for key, label in (("pii_heldout", "held-out"), ("pii_dev", "dev (tuned on)"), ("pii_dev_b", "dev b (tuned on)"),
                       ("pii_dev_c", "dev c (tuned on)"), ("pii_dev_d", "dev d (tuned on)"),
                       ("pii_dev_e", "dev e (tuned on)"), ("pii_dev_f", "dev f (tuned on)")):
        m = report[key]
        types = "  ".join(f"{k} {v['recall']:.3f}" for k, v in m["per_type"].items())
        print(f"PII {label} messages ({m['file']}): recall {m['recall']:.3f} of {m['spans']} values; "
              f"{m['clean_changed']:.3f} of {m['clean_messages']} clean messages changed")
        print(f"  {types}")
    inj = report["injection"]
    lab, held = inj["labelled"], inj["held_out"]
    print(f"Injection: labelled set {lab['attacks']} attacks / {lab['benign']} benign; "
          f"held-out set {held['attacks']} / {held['benign']}")
    for name, m in inj["rules"].items():
        print(f"  rules alone, {name:9}  TPR {m['tpr']:.3f}  FPR {m['fpr']:.3f}")
    for key, name in (("classifier_cv_5fold", "n-gram model"), ("pair_cv_5fold", "n-gram + LoRA")):
        for fpr, m in inj[key].items():
            print(f"  {name:13} (5-fold CV) at {fpr} FPR target: TPR {m['tpr']:.3f}  FPR {m['fpr']:.3f}")
    if inj["nanoguard_held_out"]:
        m = inj["nanoguard_held_out"]
        print(f"  packaged NanoGuard, held-out, at 2% FPR: TPR {m['tpr']:.3f}  FPR {m['fpr']:.3f}  (AUC {m['auc']:.3f})")
    held_policy = inj["policy_held_out"]
    for what in ("detected", "blocked"):
        m = held_policy[what]
        print(f"  input policy on the held-out set, {what:8}  TPR {m['tpr']:.3f}  FPR {m['fpr']:.3f}")
    t = held_policy["trigger_word_benign"]
    print(f"  input policy on the held-out benign rows with trigger words ({t['n']}): FPR {t['fpr']:.3f}")
    b = report["banned_topics"]
    print(f"Banned topics ({b['off_limits']} off-limits, {b['ordinary']} near-topic ordinary): caught "
          f"{b['caught']:.3f} (right topic {b['right_topic']:.3f}), ordinary flagged {b['ordinary_flagged']:.3f}; "
          f"{b['everyday']} everyday messages flagged {b['everyday_flagged']:.3f}")
    g = report["groundedness"]
    print(f"Groundedness ({g['pairs']} pairs): accuracy {g['accuracy']:.3f}, ungrounded caught "
          f"{g['ungrounded_caught']:.3f}, grounded kept {g['grounded_kept']:.3f}")
    print("Sentiment (5-fold CV)")
    for label, m in report["sentiment"].items():
        if label != "macro_f1":
            print(f"  {label:14} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  (n={m['n']})")
    print(f"  macro F1 {report['sentiment']['macro_f1']:.3f}")
    return 0


def cmd_train_injection(args) -> int:
    """Retrain the LoRA injection classifier on the current data (cross-validation, then the final fit).
    With --with-labels, reviewers' labels join the shipped data and the model is saved in the
    data directory, where it is served from; without, the shipped model is retrained in place."""
    import shutil

    from assistant.labels import read_labels
    from guardrails.checks.injection_classifier import LORA_DIR, train_lora

    services = _services(args)
    extra = read_labels(services.settings.home / "labels", "injection") if args.with_labels else []
    home_copy = services.settings.classifier_dir / "injection-lora"
    folder = home_copy if args.with_labels else LORA_DIR
    meta = train_lora(services.embedder, args.device, folder, extra=extra)
    if not args.with_labels:
        shutil.rmtree(home_copy, ignore_errors=True)  # else it would still be served instead
    summary = {"check": "injection", "rows": meta["rows"], "label_rows": len(extra), "path": str(folder)}
    if args.json:
        _emit(summary)
    else:
        print(f"trained on {meta['rows']} rows ({meta['attacks']} attacks, {len(extra)} from reviewers) with "
              f"{meta['trained_with']}; saved to {folder}")
    return 0


def cmd_train_generator(args) -> int:
    """Train an adapter on the latest dataset in a worker process, showing its progress on stderr;
    the same worker then runs the evaluation gate."""
    import time

    from assistant.training import TrainingService

    services = _services(args)
    training = TrainingService(services)
    if args.resume:
        job_id = args.resume
        training.jobs.get(job_id)
    else:
        gate = None if args.no_gate else {"questions": args.questions, "rows": args.rows, "margin": args.margin}
        job_id = training.create(_actor(args), args.method, args.epochs, args.max_steps, args.learning_rate,
                                 args.rank, args.dataset, args.device, gate, args.top_layers,
                                 args.preference_min_rows)
    # The worker's own output (the trainer prints its logs) goes to stderr: stdout is for --json.
    worker = training.spawn(job_id, sys.stderr)
    try:
        while worker.poll() is None:
            _progress_bar(training.jobs.get(job_id))
            time.sleep(0.5)
    except KeyboardInterrupt:
        training.jobs.cancel(job_id)
        worker.wait()
    job = training.jobs.get(job_id)
    print(file=sys.stderr)
    if job["state"] != "done":
        raise HelpdeskError(f"training job {job_id} {job['state']}: {job['message'] or 'see the worker output'}"
                            f" (resume it: helpdesk train generator --resume {job_id})")
    version = job["result"]["adapter"]
    result = {"job_id": job_id, "adapter": version, "metrics": job["result"]["metrics"]}
    if job["config"].get("gate"):
        result["gate"] = services.adapters.get(version)["gate"]
        if result["gate"] is None:
            raise HelpdeskError(f"adapter {version} trained, but {job['message']}")
    if args.json:
        _emit(result)
        return 0
    print(f"adapter {version} trained (job {job_id}): {result['metrics']}; not served until promoted")
    if "gate" in result:
        print_gate(result["gate"])
        print(f"promote it: helpdesk adapters promote {version}" if result["gate"]["passed"] else
              f"it failed the gate; promoting it needs: helpdesk adapters promote {version} --force --reason TEXT")
    return 0


def _progress_bar(job: dict) -> None:
    total, step = job["total"] or 0, job["step"] or 0
    filled = int(30 * step / total) if total else 0
    eta = f" eta {job['eta_s']:.0f}s" if job["eta_s"] is not None else ""
    loss = f" loss {job['loss']:.3f}" if job["loss"] is not None else ""
    note = f" · {job['message']}" if job["state"] == "done" and job["message"] else ""
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {step}/{total or '?'} {job['state']}{loss}{eta}{note}   ")
    sys.stderr.flush()


def cmd_jobs_list(args) -> int:
    from finetune.jobs import Jobs

    for job in Jobs(_services(args).engine).list(args.limit):
        if args.json:
            _emit({k: job[k] for k in ("id", "kind", "state", "step", "total", "loss", "eta_s", "result", "message",
                                       "created_by", "created_at", "finished_at")})
        else:
            print(f"{job['id']}  {job['kind']:16} {job['state']:9} {job['step']}/{job['total']}  {job['created_at'][:19]}")
    return 0


def cmd_jobs_cancel(args) -> int:
    from finetune.jobs import Jobs

    job = Jobs(_services(args).engine).cancel(args.job_id)
    _emit({"id": job["id"], "state": job["state"], "cancel_requested": job["cancel_requested"]}) if args.json \
        else print(f"job {job['id']}: cancel requested ({job['state']})")
    return 0


def cmd_train_sentiment(args) -> int:
    """Retrain the sentiment head, with reviewers' labels when asked; start-up serves it as long
    as the shipped data it rests on is unchanged."""
    from assistant.labels import read_labels
    from guardrails.checks.sentiment import FLAGGED, LABELS, SHIPPED, shipped_rows, wording_cache
    from guardrails.heads import retrain_head
    from guardrails.text_classifier import retrain

    services = _services(args)
    extra = read_labels(services.settings.home / "labels", "sentiment") if args.with_labels else []
    folder = services.settings.classifier_dir
    cache = folder / "sentiment-head.json"
    head = retrain_head(services.embedder, SHIPPED, LABELS, cache, extra)
    # The wording models that confirm the head's flags learn from the same labels.
    rows = shipped_rows()
    for label in FLAGGED:
        retrain(services.embedder, rows, extra, label, wording_cache(folder, label))
    summary = {"check": "sentiment", "label_rows": len(extra), "trained_on": head.trained_on, "path": str(cache)}
    if args.json:
        _emit(summary)
    else:
        print(f"sentiment head retrained ({len(extra)} rows from reviewers); saved to {cache}")
    return 0


def cmd_bench_load(args) -> int:
    from assistant.load import bench_load

    services = _services(args)
    services.ensure_samples()
    report = bench_load(services, args.sessions, args.turns, args.url)
    if args.json:
        _emit(report)
        return 0
    print(f"{report['sessions']} agents x {report['turns_per_session']} turns over HTTP: "
          f"{report['answered']} answered, {report['logged']} logged, {report['lost']} lost, "
          f"{report['duplicated']} duplicated, {report['errors']} errors, {report['refused_429']} refused (429, retried), "
          f"{report['blocked_by_check_timeout']} blocked by a check timeout")
    print(f"per turn p50 {report['latency_ms']['p50']:.0f} ms, p95 {report['latency_ms']['p95']:.0f} ms; "
          f"{report['turns_per_s']} turns/s over {report['wall_s']} s")
    return 0 if report["lost"] == 0 and report["duplicated"] == 0 else 1


def cmd_bench_garak(args) -> int:
    import os
    from pathlib import Path

    from assistant.redteam import DEFAULT_PROBES, run_garak

    services = _services(args)
    services.ensure_samples()
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise BadInput(f"{args.token_env} is not set")
    rows = run_garak(services, args.probes or DEFAULT_PROBES, args.url, token, Path(args.garak), args.generations,
                     args.prompt_cap)
    for row in rows:
        if args.json:
            _emit(row)
        else:
            print(f"{row['probe']:45} {row['detector']:36} {row['answers']:>4} answers: {row['blocked']:>4} blocked "
                  f"or handed off; the detector finds the attack in {row['attack_succeeded']} ({row['rate']}), "
                  f"{row['attack_in_real_answers']} of them real answers ({row['real_answer_rate']})")
    return 0


def cmd_bench_turns(args) -> int:
    from assistant.bench import bench_turns, format_table
    from retrieval.evaluate import SAMPLE_QUESTIONS, load_questions

    services = _services(args)
    services.ensure_samples()
    report = bench_turns(services, load_questions(SAMPLE_QUESTIONS), args.n)
    if args.json:
        _emit(report)
    else:
        print(format_table(report))
    return 0


def cmd_bench_generate(args) -> int:
    from assistant.bench import bench_generate, format_generate
    from core.errors import BadInput

    services = _services(args)
    if services.settings.model.backend != "local":
        raise BadInput("bench generate measures the local generator (model.backend: local)")
    report = bench_generate(services.model_dir, services.generator, args.prompt_tokens, args.new_tokens, args.repeats)
    if args.json:
        _emit(report)
    else:
        print(format_generate(report))
    return 0


def cmd_bench_guard(args) -> int:
    from assistant.bench import bench_guard

    report = bench_guard(_services(args), args.n)
    if args.json:
        _emit(report)
    else:
        print("  ".join(f"{k}={v}" for k, v in report.items()))
    return 0


def cmd_bench_retrieval(args) -> int:
    from typing import get_args

    from assistant.bench import bench_retrieval
    from core.errors import BadInput
    from core.settings import load_settings
    from core.embeddings import Precision

    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    settings = load_settings(args.config)
    precisions = [x.strip() for x in args.precision.split(",") if x.strip()] if args.precision else \
        [settings.retrieval.precision]
    known = get_args(Precision)
    unknown = sorted(set(precisions) - set(known))
    if unknown:
        raise BadInput(f"--precision: unknown {', '.join(unknown)} ({', '.join(known)})")
    for report in bench_retrieval(settings, sizes, args.queries, args.chunk_chars, precisions):
        if args.json:
            _emit(report)
        else:
            print("  ".join(f"{k}={v}" for k, v in report.items()), flush=True)
    return 0


def cmd_scan_pii(args) -> int:
    """Personal data at rest that redaction should have removed; exit 1 when any is found."""
    from assistant.scan import scan_pii

    findings = scan_pii(_services(args))
    if args.json:
        _emit({"findings": [f.as_dict() for f in findings], "count": len(findings)})
    else:
        for f in findings:
            print(f"{f.where}  {f.record}  {f.entity} at {f.start}-{f.end} (score {f.score})")
        print(f"{len(findings)} finding{'s' if len(findings) != 1 else ''}")
    return 1 if findings else 0


def cmd_serve(args) -> int:
    from assistant.server import serve

    serve(args.config, args.host, args.port)
    return 0


COLLECTION_HELP = "a named collection (default: retrieval.collection)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpdesk", description="A governed customer-service assistant.")
    parser.add_argument("--config", help="settings file (default: $HELPDESK_CONFIG or ./helpdesk.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="add files or folders to the knowledge base")
    p.add_argument("paths", nargs="+")
    p.add_argument("--collection", help=COLLECTION_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("docs", help="list, remove or re-embed ingested documents").add_subparsers(dest="what", required=True)
    q = p.add_parser("list", help="documents and their chunk counts")
    q.add_argument("--collection", help=COLLECTION_HELP)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_docs_list)
    q = p.add_parser("remove", help="remove a document (by its file name) and all its chunks")
    q.add_argument("source")
    q.add_argument("--collection", help=COLLECTION_HELP)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_docs_remove)
    q = p.add_parser("reembed", help="embed every stored chunk again at retrieval.embedding_precision")
    q.add_argument("--collection", help=COLLECTION_HELP)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_docs_reembed)

    p = sub.add_parser("search", help="search the knowledge base")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--mode", choices=MODES, help="default: retrieval.mode")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="metadata filter (source, title, heading, page, doc_type); repeat to combine")
    p.add_argument("--collection", help=COLLECTION_HELP)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="one governed chat turn")
    p.add_argument("text")
    p.add_argument("--session", help="continue a conversation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("redact", help="redact PII; '-' reads one text per line from stdin")
    p.add_argument("text")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_redact)

    p = sub.add_parser("guard", help="input verdicts as JSON; '-' reads one message per line from stdin")
    p.add_argument("text")
    p.set_defaults(func=cmd_guard)

    p = sub.add_parser("log", help="show stored exchanges, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_log)

    from assistant.feedback import REASONS as FEEDBACK_REASONS
    from assistant.review import DECISIONS, REASONS as REVIEW_REASONS, STATUSES

    p = sub.add_parser("feedback", help="thumbs up or down on an answer, with a reason and a corrected answer")
    p.add_argument("exchange_id")
    p.add_argument("rating", choices=("up", "down"))
    p.add_argument("--reason", choices=FEEDBACK_REASONS)
    p.add_argument("--correction", help="the answer as it should have been (redacted before it is stored)")
    p.add_argument("--as", dest="as_user", help="who is giving it (default: the OS user)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("dataset", help="training data from feedback, reviews and the knowledge base").add_subparsers(
        dest="what", required=True)
    q = p.add_parser("build", help="SFT, DPO and KTO rows from the log (and synthetic rows), versioned by hash")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_dataset_build)
    q = p.add_parser("synthesize", help="grounded question/answer rows from the knowledge base, for a first adapter")
    q.add_argument("--distractors", type=int, default=3, help="passages beside the right one in each prompt")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_dataset_synthesize)
    q = p.add_parser("corrections", help="ask labelled questions as logged turns; rate each against its reference "
                                         "answer and correct the wrong ones with it")
    q.add_argument("questions", help="JSONL like retrieval/eval/answers_dev.jsonl (not the gate's held-out file)")
    q.add_argument("--mode", choices=("extractive", "auto", "generate"), default="extractive")
    q.add_argument("--limit", type=int)
    q.add_argument("--as", dest="as_user", metavar="NAME")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_dataset_corrections)

    p = sub.add_parser("jobs", help="training jobs").add_subparsers(dest="what", required=True)
    q = p.add_parser("list", help="jobs, newest first, with state and progress")
    q.add_argument("--limit", type=int, default=50)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_jobs_list)
    q = p.add_parser("cancel", help="stop a job at its next step (its last checkpoint is kept)")
    q.add_argument("job_id")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_jobs_cancel)

    p = sub.add_parser("review", help="the queue of exchanges that need a human").add_subparsers(
        dest="what", required=True)
    q = p.add_parser("list", help="queue items, oldest first")
    q.add_argument("--status", choices=STATUSES)
    q.add_argument("--reason", choices=REVIEW_REASONS)
    q.add_argument("--action", choices=("allow", "flag", "handoff", "block"))
    q.add_argument("--rating", choices=("up", "down"))
    q.add_argument("--adapter")
    q.add_argument("--since", help="ISO date or time, inclusive")
    q.add_argument("--until", help="ISO date or time, exclusive")
    q.add_argument("--limit", type=int, default=200)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_review_list)
    for name, func, help_text in (("show", cmd_review_show, "an item with its whole conversation"),
                                  ("claim", cmd_review_claim, "claim an item (the claim expires)")):
        q = p.add_parser(name, help=help_text)
        q.add_argument("exchange_id")
        q.add_argument("--as", dest="as_user", help="the reviewer (default: the OS user)")
        q.add_argument("--json", action="store_true")
        q.set_defaults(func=func)
    q = p.add_parser("decide", help="decide an item")
    q.add_argument("exchange_id")
    q.add_argument("decision", choices=DECISIONS)
    q.add_argument("--answer", help="for `correct`: the answer that becomes the reference")
    q.add_argument("--note")
    q.add_argument("--label", help="label the message for a guardrail check: CHECK:LABEL, e.g. injection:attack")
    q.add_argument("--as", dest="as_user", help="the reviewer (default: the OS user)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_review_decide)
    q = p.add_parser("reopen", help="put a decided item back in the queue")
    q.add_argument("exchange_id")
    q.add_argument("--note")
    q.add_argument("--as", dest="as_user", help="the reviewer (default: the OS user)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_review_reopen)

    p = sub.add_parser("eval", help="measure quality").add_subparsers(dest="what", required=True)
    q = p.add_parser("retrieval", help="hit@1, hit@5 and MRR on labelled questions")
    q.add_argument("--questions", help="JSONL of {question, source}; default: the sample questions")
    q.add_argument("--mode", choices=MODES, help="one mode; default: every mode, one line each")
    q.add_argument("--collection", help=COLLECTION_HELP)
    q.add_argument("--loaders", choices=("helpdesk", "langchain", "both"),
                   help="read the sample articles rendered as web pages and Word documents (and the sample PDF) "
                        "with each set of loaders, each into a fresh index, and compare them side by side")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_eval_retrieval)

    q = p.add_parser("answers", help="full turns on labelled questions, per answer mode, side by side")
    q.add_argument("--questions", action="append", help="JSONL question file (repeatable); default: the shipped "
                                                         "dev and held-out splits, reported apart")
    q.add_argument("--mode", choices=("generate", "extractive", "auto"), help="one mode; default: all three")
    q.add_argument("--limit", type=int, help="only the first N items of each file")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_eval_answers)

    q = p.add_parser("guardrails", help="PII P/R/F2, injection TPR/FPR, groundedness accuracy, sentiment P/R/F1")
    q.add_argument("--pii-sentences", type=int, default=1200)
    q.add_argument("--every", type=int, default=1, metavar="N",
                   help="only every N-th message of each held-out and dev set (a quick look)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_eval_guardrails)

    p = sub.add_parser("train", help="train the generator's adapter or a guardrail model").add_subparsers(dest="what", required=True)
    q = p.add_parser("injection", help="the LoRA injection classifier, after its data changed "
                                       "(about 90 minutes on 2 CPU cores, a few minutes on a GPU)")
    q.add_argument("--device", default="cpu", help="cpu, or cuda where there is a GPU")
    q.add_argument("--with-labels", action="store_true",
                   help="add reviewers' labels from <home>/labels/injection.jsonl (saved in the data directory)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_train_injection)
    q = p.add_parser("generator", help="a LoRA adapter for the generator on the latest dataset, in a worker process")
    q.add_argument("--method", choices=("lora", "adalora"), default="lora")
    q.add_argument("--device", default="cpu", help="cpu, or cuda where there is a GPU (bf16 there)")
    q.add_argument("--dataset", help="a dataset version (default: the latest built)")
    q.add_argument("--epochs", type=float, default=1.0)
    q.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (a quick run)")
    q.add_argument("--learning-rate", type=float, default=2e-4)
    q.add_argument("--rank", type=int, default=8)
    q.add_argument("--top-layers", type=int, default=0,
                   help="LoRA in only the top N decoder layers (0: all); fewer make each step cheaper")
    q.add_argument("--preference-min-rows", type=int, default=16,
                   help="DPO or KTO after SFT when there are this many pairs or thumbs of each kind (0: SFT only)")
    q.add_argument("--resume", metavar="JOB_ID", help="resume a killed or cancelled job from its last checkpoint")
    q.add_argument("--no-gate", action="store_true", help="skip the evaluation gate after training")
    add_gate_options(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_train_generator)
    q = p.add_parser("sentiment", help="the sentiment head (seconds)")
    q.add_argument("--with-labels", action="store_true",
                   help="add reviewers' labels from <home>/labels/sentiment.jsonl")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_train_sentiment)

    p = sub.add_parser("bench", help="measure speed").add_subparsers(dest="what", required=True)
    q = p.add_parser("turns", help="full chat turns on sample questions: latency by stage")
    q.add_argument("--n", type=int, default=20)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_turns)
    q = p.add_parser("load", help="many agents chatting at once over HTTP; then the log is counted")
    q.add_argument("--sessions", type=int, default=20, help="agents, each with its own user and conversation")
    q.add_argument("--turns", type=int, default=50, help="messages per agent, one after another")
    q.add_argument("--url", help="a running server using this database (default: one started here)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_load)
    q = p.add_parser("garak", help="garak's prompt-injection, jailbreak and leak probes against /api/chat over HTTP")
    q.add_argument("--probes", default=None, help="garak probe spec (default: promptinject, dan.DanInTheWild, "
                   "leakreplay.LiteratureCloze, leakreplay.GuardianCloze)")
    q.add_argument("--url", help="a running server (default: one started here, on this data directory)")
    q.add_argument("--token-env", help="environment variable holding an API token for --url "
                   "(default: a new agent user and token on this database)")
    q.add_argument("--garak", default=".garak-venv/bin/python", help="the Python that has garak (make garak)")
    q.add_argument("--generations", type=int, default=1, help="answers per attack prompt")
    q.add_argument("--prompt-cap", type=int, default=40, help="most prompts per probe (garak's default: 256)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_garak)
    q = p.add_parser("generate", help="prefill and decode tokens/s: plain transformers vs what serves")
    q.add_argument("--prompt-tokens", type=int, default=1000)
    q.add_argument("--new-tokens", type=int, default=64)
    q.add_argument("--repeats", type=int, default=3)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_generate)
    q = p.add_parser("guard", help="input guard latency vs bare Presidio on 60-word messages")
    q.add_argument("--n", type=int, default=200)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_guard)
    q = p.add_parser("retrieval", help="ingestion throughput and query latency on generated corpora")
    q.add_argument("--sizes", default="1000,10000,100000", help="corpus sizes in chunks, comma-separated")
    q.add_argument("--queries", type=int, default=100)
    q.add_argument("--chunk-chars", type=int, default=400, help="characters of text per generated chunk")
    q.add_argument("--precision", help="embedding precisions to compare, e.g. fp32,int8 (default: the setting)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_retrieval)

    add_adapter_parsers(sub)
    add_user_parsers(sub)

    p = sub.add_parser("scan-pii", help="look for raw personal data in everything stored; exit 1 if any")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_scan_pii)

    p = sub.add_parser("serve", help="serve the web UI and the HTTP API")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _offline_env()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except HelpdeskError as exc:
        print(f"helpdesk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug, not a user error: still one line, details with -v
        log.debug("unexpected error", exc_info=True)
        if (fault := storage_fault(exc)) is not None:
            print(f"helpdesk: error: {fault}", file=sys.stderr)
            return 2
        print(f"helpdesk: unexpected error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
