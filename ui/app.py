"""The Gradio app. Each tab calls one service; no business logic lives here."""
from __future__ import annotations

import uuid

import gradio as gr

from retrieval.search import MODES
from ui import documents as docs
from ui.chat import chat_turn


def theme() -> gr.themes.Base:
    """Local system fonts: the default theme fetches web fonts, which an offline site cannot."""
    return gr.themes.Soft(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "monospace"],
    )


def build_ui(services) -> gr.Blocks:
    assistant_service = services.assistant

    with gr.Blocks(title="helpdesk") as demo:
        session_id = gr.State()
        gr.Markdown("## helpdesk · governed customer-service assistant")
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

        with gr.Tab("Documents"):
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

        def on_load() -> str:
            return uuid.uuid4().hex

        def respond(message: str, history: list[dict], sid: str):
            if not message or not message.strip():
                raise gr.Error("Type a message first.")
            sid = sid or uuid.uuid4().hex
            for messages, note in chat_turn(assistant_service, message, history, sid):
                yield "", messages, note, sid

        def reset() -> tuple[list, str, str]:
            return [], "", uuid.uuid4().hex

        def refresh_documents():
            rows = docs.document_rows(services)
            return rows, gr.update(choices=[r[0] for r in rows], value=None)

        def on_upload(paths, progress=gr.Progress()):
            if not paths:
                return [], "", *refresh_documents()
            rows, status = docs.upload(services, list(paths), lambda f, d: progress(f, desc=d))
            return rows, status, *refresh_documents()

        def on_remove(source):
            status = docs.remove(services, source)
            return status, *refresh_documents()

        def on_search(text, count, how):
            if not text or not text.strip():
                raise gr.Error("Type a query first.")
            return docs.search_rows(services, text, int(count or 5), how)

        demo.load(on_load, None, session_id)
        demo.load(refresh_documents, None, [doc_table, doc_choice])
        files.upload(on_upload, files, [upload_table, upload_status, doc_table, doc_choice])
        remove_btn.click(on_remove, doc_choice, [remove_status, doc_table, doc_choice])
        query.submit(on_search, [query, k, mode], hit_table)
        outputs = [box, chatbot, notice, session_id]
        box.submit(respond, [box, chatbot, session_id], outputs)
        send.click(respond, [box, chatbot, session_id], outputs)
        new.click(reset, None, [chatbot, notice, session_id])
    return demo
