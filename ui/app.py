"""The Gradio app. Each tab calls one service; no business logic lives here."""
from __future__ import annotations

import uuid

import gradio as gr

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

        demo.load(on_load, None, session_id)
        outputs = [box, chatbot, notice, session_id]
        box.submit(respond, [box, chatbot, session_id], outputs)
        send.click(respond, [box, chatbot, session_id], outputs)
        new.click(reset, None, [chatbot, notice, session_id])
    return demo
