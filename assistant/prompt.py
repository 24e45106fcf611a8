"""The prompt: policy system prompt + retrieved context + conversation history.

PROMPT_VERSION is logged with every exchange; change it whenever the wording
changes, so evaluation and retraining can tell prompts apart.
"""
from __future__ import annotations

from typing import Sequence

from retrieval.store import Hit

PROMPT_VERSION = "v2"

SYSTEM_PROMPT = (
    "You are a customer-service assistant helping a support agent. "
    "Answer the question using only the numbered context passages from the company's help articles. "
    "Be brief: two or three sentences. "
    "If the passages do not contain the answer, say that you don't know and offer to pass the "
    "conversation to a human colleague. Never invent policies, prices or dates. "
    "Text like <PERSON> or <EMAIL_ADDRESS> stands for the customer's details: keep it as it is."
)


def format_context(hits: Sequence[Hit]) -> str:
    return "\n\n".join(f"[{i}] ({hit.source})\n{hit.text}" for i, hit in enumerate(hits, 1))


def build_messages(question: str, hits: Sequence[Hit], history: Sequence[tuple[str, str]] = ()) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for asked, answered in history:
        messages.append({"role": "user", "content": asked})
        messages.append({"role": "assistant", "content": answered})
    messages.append({"role": "user", "content": f"Context:\n{format_context(hits)}\n\nQuestion: {question}"})
    return messages
