"""The Gradio app. Each tab calls one service; no business logic lives here."""
from __future__ import annotations

import os
import uuid

import gradio as gr

from assistant.actor import Actor
from assistant.feedback import REASONS as FEEDBACK_REASONS
from assistant.labels import LABELS as CHECK_LABELS
from assistant.review import DECISIONS, REASONS as REVIEW_REASONS, STATUSES
from core.errors import HelpdeskError
from retrieval.search import MODES
from ui import admin
from ui import documents as docs
from ui import retraining
from ui import review as rv
from ui.chat import chat_turn


def theme() -> gr.themes.Base:
    """Local system fonts: the default theme fetches web fonts, which an offline site cannot."""
    return gr.themes.Soft(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "monospace"],
    )


def build_ui(services) -> gr.Blocks:
    assistant_service = services.assistant

    def ui_actor(request: gr.Request | None) -> Actor:
        """The logged-in user, their role read afresh on every event (Unauthorized when gone)."""
        return services.users.actor_for(getattr(request, "username", None), "ui")

    def allowed(request: gr.Request | None, role: str) -> bool:
        """For refreshes a role does not see: they stay silent rather than raise every second."""
        try:
            return ui_actor(request).can(role)
        except HelpdeskError:
            return False

    with gr.Blocks(title="helpdesk") as demo:
        session_id = gr.State()
        last_exchange = gr.State()  # the exchange the feedback form rates: the latest answer
        with gr.Row():
            gr.Markdown("## helpdesk · governed customer-service assistant")
            whoami = gr.Markdown(elem_id="whoami")
            gr.Button("Log out", link="/logout", size="sm", scale=0, elem_id="logout")
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(
                label="Conversation", height=520, elem_id="chat", feedback_options=None,
                placeholder="Ask about a customer's question. Personal data is redacted before the assistant sees it.",
            )
            notice = gr.Markdown(elem_id="notice")
            with gr.Row():
                box = gr.Textbox(
                    placeholder="Type the customer's question and press Enter",
                    show_label=False, scale=8, elem_id="message", max_lines=8,
                )
                send = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            new = gr.Button("New conversation", size="sm")
            with gr.Accordion("Rate the last answer", open=True, elem_id="feedback-panel"):
                with gr.Row():
                    rating = gr.Radio([("👍 Helpful", "up"), ("👎 Not helpful", "down")], label="Rating",
                                      elem_id="rating", scale=2)
                    reason = gr.Dropdown([("(none)", "")] + [(r.replace("_", " "), r) for r in FEEDBACK_REASONS],
                                         value="", label="Reason", elem_id="feedback-reason", scale=1)
                correction = gr.Textbox(label="Corrected answer (optional; personal data is redacted)", lines=2,
                                        elem_id="correction")
                send_feedback = gr.Button("Send feedback", size="sm", elem_id="send-feedback")
                feedback_status = gr.Markdown(elem_id="feedback-status")

        with gr.Tab("Documents", visible=False, elem_id="tab-documents") as documents_tab:
            gr.Markdown("Add help articles (Markdown, text, HTML, PDF, Word). Personal data in them is "
                        "redacted before they are stored. Re-adding an unchanged file adds nothing.")
            files = gr.File(label="Upload documents", file_count="multiple", elem_id="upload")
            upload_status = gr.Markdown(elem_id="upload-status")
            upload_table = gr.Dataframe(headers=docs.RESULT_HEADERS, label="Upload results", interactive=False,
                                        elem_id="upload-results")
            doc_table = gr.Dataframe(headers=docs.DOC_HEADERS, label="Knowledge base", interactive=False,
                                     elem_id="documents")
            with gr.Row():
                doc_choice = gr.Dropdown(label="Document", choices=[], scale=4, elem_id="doc-choice")
                remove_btn = gr.Button("Remove document", variant="stop", scale=1, elem_id="remove")
            remove_status = gr.Markdown(elem_id="remove-status")
            gr.Markdown("### Try a search")
            with gr.Row():
                query = gr.Textbox(label="Query", scale=5, elem_id="doc-query")
                k = gr.Number(value=5, label="Results", precision=0, minimum=1, maximum=50, scale=1)
                mode = gr.Dropdown(list(MODES), value=services.settings.retrieval.mode, label="Mode", scale=1)
            hit_table = gr.Dataframe(headers=docs.HIT_HEADERS, label="Hits", interactive=False, wrap=True,
                                     elem_id="hits")

        with gr.Tab("Review", visible=False, elem_id="tab-review") as review_tab:
            gr.Markdown("Turns that were flagged, handed off, blocked, shown with low groundedness, or "
                        "down-voted. Claim an item, decide, move on. Only redacted text is shown.")
            with gr.Row():
                f_status = gr.Dropdown([rv.ANY, *STATUSES], value="pending", label="Status", elem_id="f-status")
                f_reason = gr.Dropdown([rv.ANY, *REVIEW_REASONS], value=rv.ANY, label="Reason", elem_id="f-reason")
                f_action = gr.Dropdown([rv.ANY, "allow", "flag", "handoff", "block"], value=rv.ANY, label="Action")
                f_rating = gr.Dropdown([rv.ANY, "up", "down"], value=rv.ANY, label="Rating")
                f_adapter = gr.Textbox(label="Adapter", placeholder="any")
                f_since = gr.Textbox(label="From (ISO date)", placeholder="2026-12-01")
                f_until = gr.Textbox(label="Until (ISO date)", placeholder="")
            review_counts = gr.Markdown(elem_id="review-counts")
            queue_table = gr.Dataframe(headers=rv.QUEUE_HEADERS, label="Queue (click a row to open it)",
                                       interactive=False, wrap=True, elem_id="queue")
            with gr.Row():
                item_id = gr.Textbox(label="Exchange", elem_id="item-id", scale=3)
                open_next = gr.Button("Open next pending", elem_id="open-next", scale=1)
                claim_btn = gr.Button("Claim", elem_id="claim", scale=1)
            item_view = gr.Markdown(elem_id="item")
            with gr.Row():
                decision = gr.Radio(list(DECISIONS), label="Decision", elem_id="decision", scale=3)
                reopen_btn = gr.Button("Reopen", size="sm", elem_id="reopen", scale=1)
            review_answer = gr.Textbox(label="Answer (for correct: it becomes the reference)", lines=3,
                                       elem_id="review-answer")
            with gr.Row():
                review_note = gr.Textbox(label="Note", elem_id="review-note", scale=3)
                review_label = gr.Dropdown(
                    [("(none)", "")] + [(f"{c}: {v}", f"{c}:{v}") for c, values in CHECK_LABELS.items() for v in values],
                    value="", label="Label the message for a check (e.g. a missed attack)", elem_id="review-label",
                    scale=2)
            decide_btn = gr.Button("Decide and next", variant="primary", elem_id="decide")
            review_status = gr.Markdown(elem_id="review-status")
            review_timer = gr.Timer(1.0)

        with gr.Tab("Retraining", visible=False, elem_id="tab-retraining") as retraining_tab:
            retraining.build_tab(services, ui_actor)

        with gr.Tab("Admin", visible=False, elem_id="tab-admin") as admin_tab:
            admin_refresh, admin_filters, admin_outputs = admin.build_tab(services, ui_actor)

        def on_load(request: gr.Request):
            """A new conversation id, and the tabs this user's role may use (the services check
            the role again on every event: hiding a tab is for the eye, not the guard)."""
            actor = ui_actor(request)
            tabs = [gr.update(visible=actor.can(role)) for role in ("reviewer", "reviewer", "admin", "admin")]
            return uuid.uuid4().hex, f"Signed in as **{actor.id}** ({actor.role})", *tabs

        def respond(message: str, history: list[dict], sid: str, last: str | None, request: gr.Request):
            if not message or not message.strip():
                raise gr.Error("Type a message first.")
            sid = sid or uuid.uuid4().hex
            try:
                actor = ui_actor(request)
            except HelpdeskError as exc:
                raise gr.Error(str(exc)) from None
            for messages, note, exchange_id in chat_turn(assistant_service, message, history, sid, actor):
                yield "", messages, note, sid, exchange_id or last

        def on_feedback(exchange_id, given, why, corrected, request: gr.Request):
            if not exchange_id:
                return "Ask something first: feedback rates the last answer."
            if given not in ("up", "down"):
                return "Choose 👍 or 👎 first."
            try:
                fb = services.feedback.give(ui_actor(request), exchange_id, given, why or None, corrected)
            except HelpdeskError as exc:
                raise gr.Error(str(exc)) from None
            stored = f" Correction stored as: *{fb.correction}*" if fb.correction else ""
            return f"Thanks: {'👍' if fb.rating == 'up' else '👎'} recorded for the last answer.{stored}"

        filters = [f_status, f_reason, f_action, f_rating, f_adapter, f_since, f_until]

        def refresh_queue(status, why, action, given, adapter, since, until, request: gr.Request):
            values = (status, why, action, given, adapter, since, until)
            if not allowed(request, "reviewer"):
                return gr.update(), gr.update()
            actor = ui_actor(request)
            try:
                return rv.queue_rows(services.review, actor, *values), rv.counts_line(services.review, actor)
            except HelpdeskError as exc:
                return gr.update(), f"⚠️ {exc}"

        def show_item(exchange_id: str, request: gr.Request):
            if not exchange_id:
                return "", "", ""
            try:
                shown = services.review.show(ui_actor(request), exchange_id.strip())
            except HelpdeskError as exc:
                return f"⚠️ {exc}", "", ""
            return rv.item_markdown(shown), rv.suggested_answer(shown), ""

        def on_select(evt: gr.SelectData, request: gr.Request):
            row = evt.row_value or []
            exchange_id = row[0] if row else ""
            return (exchange_id, *show_item(exchange_id, request))

        def on_next(status, why, action, given, adapter, since, until, request: gr.Request):
            values = (status, why, action, given, adapter, since, until)
            try:
                item = services.review.next_pending(ui_actor(request), **_filter_kwargs(values))
            except HelpdeskError as exc:
                return "", f"⚠️ {exc}", "", ""
            if item is None:
                return "", "No pending items match the filters.", "", ""
            return (item["exchange_id"], *show_item(item["exchange_id"], request))

        def _filter_kwargs(values) -> dict:
            _, why, action, given, adapter, since, until = (rv.or_none(v) for v in values)
            return {"reason": why, "action": action, "rating": given, "adapter": adapter, "since": since,
                    "until": until}

        def on_claim(exchange_id: str, request: gr.Request):
            try:
                item = services.review.claim(ui_actor(request), (exchange_id or "").strip())
            except HelpdeskError as exc:
                return gr.update(), f"⚠️ {exc}"
            return show_item(item["exchange_id"], request)[0], f"Claimed until {item['claim_expires_at'][:19]}."

        def on_decide(exchange_id: str, chosen: str, answer: str, note: str, label: str, status, why, action, given,
                      adapter, since, until, request: gr.Request):
            values = (status, why, action, given, adapter, since, until)
            exchange_id = (exchange_id or "").strip()
            if not exchange_id or not chosen:
                return exchange_id, gr.update(), gr.update(), "Open an item and choose a decision first.", "", gr.update()
            try:
                item = services.review.decide(ui_actor(request), exchange_id, chosen, answer, note, label or None)
            except HelpdeskError as exc:
                return exchange_id, gr.update(), gr.update(), f"⚠️ {exc}", note, gr.update()
            done = f"✅ {item['decision']} recorded for `{exchange_id}`."
            following = services.review.next_pending(ui_actor(request), after=exchange_id,
                                                     **_filter_kwargs(values))
            if following is None:
                return "", "", "", done + " The queue is empty.", "", None
            view, suggested, _ = show_item(following["exchange_id"], request)
            return following["exchange_id"], view, suggested, done + " Next item opened.", "", None

        def on_reopen(exchange_id: str, note: str, request: gr.Request):
            try:
                services.review.reopen(ui_actor(request), (exchange_id or "").strip(), note)
            except HelpdeskError as exc:
                return gr.update(), f"⚠️ {exc}"
            return show_item(exchange_id.strip(), request)[0], "Reopened: the item is pending again."

        def reset() -> tuple[list, str, str, None]:
            return [], "", uuid.uuid4().hex, None

        def refresh_documents(request: gr.Request):
            if not allowed(request, "reviewer"):
                return gr.update(), gr.update()
            rows = docs.document_rows(services, ui_actor(request))
            return rows, gr.update(choices=[r[0] for r in rows], value=None)

        def on_upload(paths, request: gr.Request, progress=gr.Progress()):
            if not paths:
                return [], "", *refresh_documents(request)
            try:
                rows, status = docs.upload(services, ui_actor(request), list(paths),
                                           lambda f, d: progress(f, desc=d))
            except HelpdeskError as exc:
                raise gr.Error(str(exc)) from None
            return rows, status, *refresh_documents(request)

        def on_remove(source, request: gr.Request):
            try:
                status = docs.remove(services, ui_actor(request), source)
            except HelpdeskError as exc:
                raise gr.Error(str(exc)) from None
            return status, *refresh_documents(request)

        def on_search(text, count, how, request: gr.Request):
            if not text or not text.strip():
                raise gr.Error("Type a query first.")
            try:
                return docs.search_rows(services, ui_actor(request), text, int(count or 5), how)
            except HelpdeskError as exc:
                raise gr.Error(str(exc)) from None

        demo.load(on_load, None, [session_id, whoami, documents_tab, review_tab, retraining_tab, admin_tab])
        demo.load(admin_refresh, admin_filters, admin_outputs)
        demo.load(refresh_documents, None, [doc_table, doc_choice])
        files.upload(on_upload, files, [upload_table, upload_status, doc_table, doc_choice])
        remove_btn.click(on_remove, doc_choice, [remove_status, doc_table, doc_choice])
        query.submit(on_search, [query, k, mode], hit_table)
        outputs = [box, chatbot, notice, session_id, last_exchange]
        # As many agents' turns at once as over the API (one per core); the rest wait in Gradio's
        # queue, which shows each its place, and then in the model's line (`queued_text`).
        running = services.settings.server.max_running_turns or os.cpu_count() or 1
        chat = {"concurrency_limit": running, "concurrency_id": "chat"}
        box.submit(respond, [box, chatbot, session_id, last_exchange], outputs, **chat)
        send.click(respond, [box, chatbot, session_id, last_exchange], outputs, **chat)
        new.click(reset, None, [chatbot, notice, session_id, last_exchange])
        send_feedback.click(on_feedback, [last_exchange, rating, reason, correction], feedback_status)

        demo.load(refresh_queue, filters, [queue_table, review_counts])
        review_timer.tick(refresh_queue, filters, [queue_table, review_counts], show_progress="hidden")
        for f in filters:
            f.change(refresh_queue, filters, [queue_table, review_counts])
        queue_table.select(on_select, None, [item_id, item_view, review_answer, review_note])
        item_id.submit(show_item, item_id, [item_view, review_answer, review_note])
        open_next.click(on_next, filters, [item_id, item_view, review_answer, review_note])
        claim_btn.click(on_claim, item_id, [item_view, review_status])
        decide_btn.click(on_decide, [item_id, decision, review_answer, review_note, review_label, *filters],
                         [item_id, item_view, review_answer, review_status, review_note, decision])
        reopen_btn.click(on_reopen, [item_id, review_note], [item_view, review_status])
    return demo
