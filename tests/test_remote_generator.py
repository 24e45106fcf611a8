"""The OpenAI-compatible generator backend against a stand-in server.

No vLLM, llama.cpp server or Ollama can run on the test machine (no GPU, no model hub,
and building llama.cpp takes minutes), so the server here is faked: a real HTTP
server (uvicorn) that speaks the chat-completions streaming protocol (server-sent
events) and knows one base model and one LoRA adapter by name, as vLLM with
`--enable-lora` does. What is real: the `openai` client, the HTTP and SSE
streaming, and the governed turn around it.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi import Request

from assistant.remote_generator import OpenAICompatibleGenerator
from core.errors import ConfigError
from finetune.registry import AdapterRef

KNOWN = {"smol-base": "Returns are accepted within 30 days of delivery [1].",
         "v-lora-1": "Opened items can be returned within 30 days, unused [1]."}


@pytest.fixture(scope="module")
def fake_server():
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, StreamingResponse

    app = FastAPI()
    requests_seen: list[dict] = []

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        requests_seen.append(body)
        if body["model"] not in KNOWN:
            return JSONResponse({"error": {"message": f"model {body['model']} not found", "type": "NotFound"}},
                                status_code=404)

        def events():
            for i, word in enumerate(KNOWN[body["model"]].split(" ")):
                chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"content": ("" if i == 0 else " ") + word},
                                      "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1", requests_seen
    server.should_exit = True
    thread.join(timeout=10)


def test_streams_the_base_model_or_an_adapter_by_name(fake_server):
    url, seen = fake_server
    generator = OpenAICompatibleGenerator(url, "SmolLM2", "smol-base", max_new_tokens=50)
    messages = [{"role": "user", "content": "Can I return it?"}]
    served: dict = {}
    pieces = list(generator.stream(messages, served))
    assert "".join(pieces) == KNOWN["smol-base"] and len(pieces) > 3  # streamed, not one block
    assert served["adapter"] is None and served["settings"]["served_model"] == "smol-base"
    assert seen[-1]["model"] == "smol-base" and seen[-1]["max_tokens"] == 50 and seen[-1]["stream"] is True
    assert seen[-1]["messages"] == messages
    served = {}
    text = "".join(generator.stream(messages, served, AdapterRef("v-lora-1", Path("/unused"))))
    assert text == KNOWN["v-lora-1"] and seen[-1]["model"] == "v-lora-1" and served["adapter"] == "v-lora-1"


def test_an_adapter_the_server_does_not_know_blocks_the_turn(fake_server, services):
    from assistant.service import Assistant

    url, _ = fake_server
    generator = OpenAICompatibleGenerator(url, "SmolLM2", "smol-base")
    good = Assistant(services.guard, services.retriever, generator, services.store, answer_mode="generate")
    result = good.respond(None, "Can I return an opened blender?")
    assert result.action != "block" and result.answer_mode in ("generate", None)
    missing = Assistant(services.guard, services.retriever, generator, services.store, answer_mode="generate",
                        adapters=lambda session: AdapterRef("v-unknown", Path("/unused")))
    blocked = missing.respond(None, "Can I return an opened blender?")
    assert blocked.action == "block" and blocked.reasons[-1].startswith("error:")
    assert services.store.exchange(blocked.exchange_id)["generation"]["adapter"] == "v-unknown"


def test_the_backend_is_chosen_by_settings_and_needs_a_url(make_settings, tmp_path, fake_server):
    from assistant.app import Services

    url, _ = fake_server
    services = Services(make_settings(tmp_path / "a", HELPDESK_MODEL__BACKEND="openai", HELPDESK_MODEL__BASE_URL=url,
                                      HELPDESK_MODEL__SERVED_MODEL="smol-base"))
    assert isinstance(services.generator, OpenAICompatibleGenerator)
    assert "".join(services.generator.stream([{"role": "user", "content": "hi"}])) == KNOWN["smol-base"]
    with pytest.raises(ConfigError, match="base_url"):
        Services(make_settings(tmp_path / "b", HELPDESK_MODEL__BACKEND="openai")).generator
