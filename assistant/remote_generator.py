"""A generator served by an OpenAI-compatible server: vLLM, llama.cpp's server, Ollama.

One client, the `openai` package, streams chat completions. An adapter is asked
for by name, the way vLLM serves LoRA adapters (`--enable-lora --lora-modules
NAME=PATH`): the request's `model` is the adapter's version; the base model alone
is `model.served_model`. Servers that cannot switch adapters per request (llama.cpp,
Ollama) serve the base model; promote nothing there, or name the adapter as the
served model. Nothing here falls back to the base model when an adapter is asked
for and the server does not know it: the server's error blocks the turn.
"""
from __future__ import annotations

import logging
import os
from typing import Iterator, Sequence

from core.errors import ConfigError
from finetune.registry import AdapterRef

log = logging.getLogger(__name__)


class OpenAICompatibleGenerator:
    def __init__(self, base_url: str, model_name: str, served_model: str, api_key: str | None = None,
                 max_new_tokens: int = 160, temperature: float = 0.0, repetition_penalty: float = 1.0,
                 timeout_s: float = 120.0) -> None:
        from openai import OpenAI

        if not base_url:
            raise ConfigError("model.backend is openai, but model.base_url is empty (e.g. http://localhost:8000/v1)")
        self.model_name = model_name
        self.served_model = served_model
        self.base_url = base_url
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        # Local servers take any key; the client insists on one.
        self.client = OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=1)

    def generation_settings(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature,
                "repetition_penalty": self.repetition_penalty, "backend": "openai", "base_url": self.base_url}

    def stream(self, messages: Sequence[dict], served: dict | None = None,
               adapter: AdapterRef | None = None) -> Iterator[str]:
        model = adapter.version if adapter else self.served_model
        if served is not None:
            served.update(model=self.model_name, adapter=adapter.version if adapter else None,
                          settings=self.generation_settings() | {"served_model": model})
        response = self.client.chat.completions.create(
            model=model, messages=list(messages), stream=True, max_tokens=self.max_new_tokens,
            temperature=self.temperature,
            # vLLM and llama.cpp read it; a server that does not know it ignores extra fields.
            extra_body={"repetition_penalty": self.repetition_penalty},
        )
        try:
            for chunk in response:
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content
        finally:
            response.close()  # a reader that stops early closes the connection: the server stops too


def from_settings(m) -> OpenAICompatibleGenerator:
    return OpenAICompatibleGenerator(m.base_url or "", m.name, m.served_model or m.name,
                                     os.environ.get(m.api_key_env) if m.api_key_env else None,
                                     m.max_new_tokens, m.temperature, m.repetition_penalty)
