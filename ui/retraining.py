"""Retraining tab (admin): data, a training run with its live loss curve, the gate's table, promote
and roll back, A/B tests, and monitoring plots, all through the services."""
from __future__ import annotations

from typing import Callable

import gradio as gr
import pandas as pd

from finetune.gate import extractive_line
from assistant.monitoring import ab_status, over_time, rate_text, turns
from core.errors import HelpdeskError

VERSION_HEADERS = ["version", "status", "gate", "dataset", "trained by", "created", "erased rows"]
GATE_HEADERS = ["metric", "baseline", "candidate", "change"]
AB_HEADERS = ["figure", "baseline", "candidate"]
MONITOR_FIGURES = (("answer_rate", "Answer rate"), ("flag_rate", "Flag rate"), ("thumbs_up", "Thumbs-up rate"),
                   ("latency_p50_ms", "Latency p50 (ms)"))


def dataset_line(services) -> str:
    from finetune.datasets import latest_built

    built = latest_built(services.engine)
    if built is None:
        return "No dataset built yet: synthesize rows from the knowledge base, then build."
    rows = built["rows"]
    return (f"Latest dataset **{built['version']}**: {rows.get('sft', 0)} SFT rows, {rows.get('dpo', 0)} DPO pairs, "
            f"{rows.get('kto', 0)} KTO rows · built by {built['built_by']} at {built['built_at'][:19]}")


def version_rows(services) -> list[list]:
    out = []
    for a in services.adapters.list():
        gate = a["gate"]
        out.append([a["version"], "serving" if a["serving"] else a["status"],
                    "" if gate is None else "passed" if gate["passed"] else "failed", a["dataset"] or "",
                    a["trained_by"], a["created_at"][:19].replace("T", " "),
                    f"{a['erased_rows']}: retrain without them" if a.get("erased_rows") else ""])
    return out


def serving_line(services) -> str:
    version = services.adapters.serving_version()
    test = services.ab.active()
    ab = f" · A/B: **{test['candidate']}** on {test['share']:.0%} of conversations" if test else ""
    return f"Serving: **{version or 'the base model'}**{ab}"


def job_view(services, training) -> tuple[str, pd.DataFrame]:
    job = training.latest()
    if job is None:
        return "No training run yet.", pd.DataFrame({"step": [], "loss": []})
    total, step = job["total"] or 0, job["step"] or 0
    eta = f" · ETA {job['eta_s']:.0f} s" if job["eta_s"] is not None else ""
    loss = f" · loss {job['loss']:.3f}" if job["loss"] is not None else ""
    note = f" · {job['message']}" if job["message"] else ""
    text = (f"Job `{job['id']}` (adapter `{job['config']['version']}`): **{job['state']}** · step {step}/{total or '?'}"
            f"{loss}{eta}{note}")
    return text, pd.DataFrame(job["losses"] or [], columns=["step", "loss"])


def gate_rows(services, version: str | None) -> tuple[list[list], str]:
    if not version:
        return [], ""
    gate = services.adapters.get(version)["gate"]
    if gate is None:
        return [], f"`{version}` has not been through the gate yet."
    low, high = gate["ci"]
    verdict = "**passed**" if gate["passed"] else "**failed**: " + "; ".join(gate["reasons"])
    versus = extractive_line(gate)
    return ([[label, b, c, d] for label, b, c, d in gate["table"]],
            f"Against `{gate['baseline']}` on {gate['evaluated_on']['questions']} held-out questions: score change "
            f"{gate['difference']:+.4f} (95% CI [{low:+.4f}, {high:+.4f}]), {verdict}"
            + (f"; {versus[0].upper()}{versus[1:]}" if versus else ""))


def ab_rows(services) -> tuple[list[list], str]:
    status = ab_status(services)
    if status is None:
        return [], "No A/B test has run."
    cand, base = status["arms"]["candidate"], status["arms"]["baseline"]

    rows = [["adapter", base["adapter"], cand["adapter"]],
            ["conversations", base["conversations"], cand["conversations"]],
            ["turns", base["turns"], cand["turns"]]]
    rows += [[key.replace("_", " "), rate_text(base[key]), rate_text(cand[key])]
             for key in ("thumbs_up", "flag_rate", "answer_rate", "groundedness")]
    rows.append(["latency p50 ms", base["latency_ms"]["p50"], cand["latency_ms"]["p50"]])
    test = status["test"]
    state = "running" if status["running"] else "stopped"
    return rows, f"A/B `{test['id']}` ({state}): `{test['candidate']}` on {test['share']:.0%} since {test['started_at'][:19]}"


def monitor_frames(services, bucket: str = "hour") -> list[pd.DataFrame]:
    points = over_time(turns(services.engine), bucket)
    frame = pd.DataFrame(points, columns=["period", "adapter", "turns", *(k for k, _ in MONITOR_FIGURES)])
    return [frame[["period", "adapter", key]].dropna() for key, _ in MONITOR_FIGURES]


def build_tab(services, actor_of: Callable[[gr.Request], object]) -> None:
    """The tab's components and events; called inside `with gr.Tab(...)`."""
    from assistant.training import TrainingService

    training = TrainingService(services)
    gr.Markdown("Turn reviewed conversations into a LoRA adapter. An adapter serves only once promoted; "
                "promotion needs a passed evaluation gate (or a forced promotion with a reason).")
    serving = gr.Markdown(elem_id="rt-serving")
    with gr.Accordion("1 · Data", open=True):
        dataset = gr.Markdown(elem_id="rt-dataset")
        with gr.Row():
            synthesize = gr.Button("Synthesize rows from the knowledge base", size="sm", elem_id="rt-synthesize")
            build = gr.Button("Build dataset", size="sm", elem_id="rt-build")
    with gr.Accordion("2 · Train", open=True):
        with gr.Row():
            method = gr.Radio(["lora", "adalora"], value="lora", label="Method", elem_id="rt-method")
            max_steps = gr.Number(value=0, precision=0, minimum=0, label="Steps (0: one epoch)",
                                  elem_id="rt-max-steps")
            questions = gr.Number(value=60, precision=0, minimum=0, label="Gate questions (0: all)",
                                  elem_id="rt-questions")
        with gr.Row():
            train = gr.Button("Start training", variant="primary", elem_id="rt-train")
            cancel = gr.Button("Cancel", variant="stop", elem_id="rt-cancel")
        progress = gr.Markdown(elem_id="rt-progress")
        loss = gr.LinePlot(x="step", y="loss", title="Training loss", height=220, elem_id="rt-loss")
    with gr.Accordion("3 · Versions, gate, promote", open=True):
        versions = gr.Dataframe(headers=VERSION_HEADERS, interactive=False, elem_id="rt-versions")
        with gr.Row():
            version = gr.Dropdown(label="Version", choices=[], scale=3, elem_id="rt-version")
            force = gr.Checkbox(label="Force (gate failed or skipped)", scale=1, elem_id="rt-force")
            reason = gr.Textbox(label="Reason (recorded)", scale=3, elem_id="rt-reason")
        gate_note = gr.Markdown(elem_id="rt-gate-note")
        gate = gr.Dataframe(headers=GATE_HEADERS, interactive=False, elem_id="rt-gate")
        with gr.Row():
            promote = gr.Button("Promote", variant="primary", elem_id="rt-promote")
            rollback = gr.Button("Roll back", elem_id="rt-rollback")
            archive = gr.Button("Archive", elem_id="rt-archive")
        status = gr.Markdown(elem_id="rt-status")
    with gr.Accordion("4 · A/B test", open=False):
        with gr.Row():
            share = gr.Slider(0.05, 0.95, value=0.2, step=0.05, label="Candidate's share of conversations",
                              elem_id="rt-share")
            ab_start = gr.Button("Start A/B with the selected version", elem_id="rt-ab-start")
            ab_stop = gr.Button("Stop A/B", elem_id="rt-ab-stop")
        ab_note = gr.Markdown(elem_id="rt-ab-note")
        ab_table = gr.Dataframe(headers=AB_HEADERS, interactive=False, elem_id="rt-ab")
    with gr.Accordion("5 · Monitoring (per adapter, per hour)", open=False):
        with gr.Row():
            plots = [gr.LinePlot(x="period", y=key, color="adapter", title=title, height=220)
                     for key, title in MONITOR_FIGURES[:2]]
        with gr.Row():
            plots += [gr.LinePlot(x="period", y=key, color="adapter", title=title, height=220)
                      for key, title in MONITOR_FIGURES[2:]]
        refresh_monitor = gr.Button("Refresh plots", size="sm")
    timer = gr.Timer(2.0)  # progress, loss curve, versions, A/B figures
    slow_timer = gr.Timer(30.0)  # the monitoring plots

    def admin(request: gr.Request | None) -> bool:
        """Read-only refreshes (timers) stay silent for anyone else: the tab is hidden for them."""
        try:
            return actor_of(request).can("admin")
        except HelpdeskError:  # logged out, or removed since the page opened
            return False

    def refresh(chosen, request: gr.Request):
        if not admin(request):
            return (gr.update(),) * 6
        rows = version_rows(services)
        names = [r[0] for r in rows]
        text, curve = job_view(services, training)
        return (serving_line(services), dataset_line(services), text, curve, rows,
                gr.update(choices=names, value=chosen if chosen in names else None))

    def guarded(action: Callable[[], str]) -> str:
        try:
            return action()
        except HelpdeskError as exc:
            return f"⚠️ {exc}"

    def on_synthesize(request: gr.Request):
        note = guarded(lambda: "Synthesized {rows} rows from {chunks} chunks.".format(
            **services.datasets.synthesize(actor_of(request))))
        return note, dataset_line(services) if admin(request) else gr.update()

    def on_build(request: gr.Request):
        note = guarded(lambda: f"Built dataset {services.datasets.build(actor_of(request)).version}.")
        return note, dataset_line(services) if admin(request) else gr.update()

    def on_train(how, steps, gate_questions, request: gr.Request):
        return guarded(lambda: "Training job `{}` started.".format(training.start(
            actor_of(request), method=how, max_steps=int(steps) or -1,
            gate={"questions": int(gate_questions or 0), "rows": 20, "margin": 0.02})))

    def on_cancel(request: gr.Request):
        if not admin(request):
            return "⚠️ this needs the admin role"
        job = training.latest()
        if job is None:
            return "No training run to cancel."
        return guarded(lambda: f"Cancel requested for job `{training.cancel(actor_of(request), job['id'])['id']}`.")

    def on_promote(chosen, forced, why, request: gr.Request):
        if not chosen:
            return "Choose a version first."

        def promote() -> str:
            services.releases.promote(actor_of(request), chosen, bool(forced), why or None)
            return f"✅ `{chosen}` serves from the next turn."
        return guarded(promote)

    def on_rollback(why, request: gr.Request):
        return guarded(lambda: "✅ Rolled back: {} serves now.".format(
            services.releases.rollback(actor_of(request), why or None) or "the base model"))

    def on_archive(chosen, request: gr.Request):
        if not chosen:
            return "Choose a version first."

        def archive() -> str:
            services.releases.archive(actor_of(request), chosen)
            return f"`{chosen}` archived."
        return guarded(archive)

    def on_ab_start(chosen, fraction, forced, why, request: gr.Request):
        def start() -> str:
            if not chosen:
                return "Choose a version first."
            services.releases.start_ab(actor_of(request), chosen, float(fraction), bool(forced), why or None)
            return f"✅ A/B started: `{chosen}` on {float(fraction):.0%} of conversations."
        return guarded(start), *on_ab_refresh(request)

    def on_ab_stop(request: gr.Request):
        def stop() -> str:
            services.releases.stop_ab(actor_of(request))
            return "A/B stopped."
        return guarded(stop), *on_ab_refresh(request)

    def on_ab_refresh(request: gr.Request):
        if not admin(request):
            return gr.update(), gr.update()
        rows, note = ab_rows(services)
        return note, rows

    def on_version(chosen, request: gr.Request):
        return gate_rows(services, chosen) if admin(request) else (gr.update(), gr.update())

    def on_monitor(request: gr.Request):
        return monitor_frames(services) if admin(request) else [gr.update()] * len(plots)

    outputs = [serving, dataset, progress, loss, versions, version]
    gr.on([timer.tick], refresh, version, outputs, show_progress="hidden")
    synthesize.click(on_synthesize, None, [status, dataset])
    build.click(on_build, None, [status, dataset])
    train.click(on_train, [method, max_steps, questions], status)
    cancel.click(on_cancel, None, status)
    version.change(on_version, version, [gate, gate_note])
    promote.click(on_promote, [version, force, reason], status).then(refresh, version, outputs)
    rollback.click(on_rollback, reason, status).then(refresh, version, outputs)
    archive.click(on_archive, version, status).then(refresh, version, outputs)
    ab_start.click(on_ab_start, [version, share, force, reason], [status, ab_note, ab_table])
    ab_stop.click(on_ab_stop, None, [status, ab_note, ab_table])
    gr.on([refresh_monitor.click, slow_timer.tick], on_monitor, None, plots,
          show_progress="hidden")
    gr.on([timer.tick], on_ab_refresh, None, [ab_note, ab_table], show_progress="hidden")
