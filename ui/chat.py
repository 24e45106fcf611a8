"""Chat tab adapters: turn the assistant's stream of events into chat messages.

Per-user state lives in the browser session (gr.State and the chatbot's own
value), never in module globals: two agents never see each other's chats.
"""
from __future__ import annotations

import html
import re
from typing import Iterator

from core.errors import HelpdeskError
from assistant.service import Done, InputChecked, Queued, Retrieved, Token, TurnResult
from guardrails.verdict import InputVerdict

ANY_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
NOTICE_STYLE = {"allow": "ℹ️", "flag": "⚠️", "handoff": "🙋", "block": "⛔"}
NOTICE_LABEL = {"flag": "Flagged for review", "handoff": "Handed off to a human", "block": "Blocked"}


def notice_for(verdict: InputVerdict | None, result: TurnResult | None) -> str:
    """The line shown above the input: redaction, flag and block are never silent."""
    lines = []
    if verdict is not None and verdict.entities:
        types = sorted({e.type for e in verdict.entities})
        lines.append(f"🔒 **Redacted** before processing: {', '.join(types)}")
    if result is not None and result.action != "allow":
        label = NOTICE_LABEL[result.action]
        reasons = ", ".join(result.reasons) or "policy"
        lines.append(f"{NOTICE_STYLE[result.action]} **{label}**: {html.escape(reasons)}")
    elif result is not None and "no_context" in result.reasons:
        lines.append("ℹ️ No matching help article: a human handoff was offered")
    return "\n\n".join(lines)


def source_messages(result: TurnResult) -> list[dict]:
    """One collapsible message per source: title shows the file and score, body the chunk."""
    return [
        {
            "role": "assistant",
            "content": hit.text,
            "metadata": {"title": f"📄 Source {i}: {hit.source} (score {hit.score:.2f})", "status": "done"},
        }
        for i, hit in enumerate(result.sources, 1)
    ]


def queued_text(ahead: int) -> str:
    """A waiting agent's place in the line, updated as the answers ahead of theirs finish."""
    if ahead == 1:
        return "⏳ Queued: the assistant is finishing another agent's answer; yours starts next."
    return f"⏳ Queued: {ahead} answers are ahead of yours (you are number {ahead + 1} in line)."


def highlight(text: str) -> str:
    """Placeholders as code spans, so the agent sees at a glance what was redacted."""
    return ANY_PLACEHOLDER.sub(lambda m: f"`{m.group(0)}`", text)


def chat_turn(assistant, message: str, history: list[dict], session_id: str,
              actor=None) -> Iterator[tuple[list[dict], str, str | None]]:
    """Stream one turn into the chat history; yields (history, notice, exchange id once logged).
    Streamed text has passed the output checks; a turn that could not be recorded shows no
    answer at all."""
    history = list(history or [])
    history.append({"role": "user", "content": message})
    history.append({"role": "assistant", "content": "…"})
    verdict = None
    streamed = ""
    yield history, "", None
    try:
        for event in assistant.stream(session_id, message, actor):
            if isinstance(event, InputChecked):
                verdict = event.verdict
                # Show what the assistant actually received: the redacted text.
                history[-2] = {"role": "user", "content": highlight(verdict.redacted_text)}
                yield history, notice_for(verdict, None), None
            elif isinstance(event, Retrieved):
                continue
            elif isinstance(event, Queued):
                history[-1] = {"role": "assistant", "content": queued_text(event.ahead)}
                yield history, notice_for(verdict, None), None
            elif isinstance(event, Token):
                streamed += event.text
                history[-1] = {"role": "assistant", "content": streamed}
                yield history, notice_for(verdict, None), None
            elif isinstance(event, Done):
                # Only here, in the agent's own view, do placeholders become the customer's values again.
                history[-1] = {"role": "assistant", "content": assistant.guard.reveal(session_id, event.result.answer)}
                history.extend(source_messages(event.result))
                yield history, notice_for(verdict, event.result), event.result.exchange_id
    except HelpdeskError as exc:  # e.g. the turn could not be logged: none of its answer may stay on screen
        history[-1] = {"role": "assistant", "content": "⛔ This turn failed and was not answered."}
        yield history, f"⛔ **The turn failed**: {html.escape(str(exc))}", None
