"""The HTTP server: the JSON API and the Gradio UI on one port.

Bad requests get a JSON error with a 4xx status; a turn that starts is always
logged (the service guarantees it), so no exchange is lost to a bad request.
"""
from __future__ import annotations

import logging
import os
from typing import Annotated

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.app import Services
from core.errors import BadInput, HelpdeskError

log = logging.getLogger(__name__)
SESSION_ID = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: SESSION_ID | None = Field(None, description="Continue a conversation; omit to start one.")
    message: str = Field(description="The agent's message, raw: it is redacted before anything else.")


class Source(BaseModel):
    source: str
    chunk_id: str
    score: float


class ChatResponse(BaseModel):
    exchange_id: str
    session_id: str
    answer: str
    sources: list[Source]
    action: str = Field(description="allow | flag | handoff | block")
    reasons: list[str]
    redacted_input: str
    model: str | None
    adapter: str | None
    latency_ms: dict[str, float]
    answer_mode: str | None = Field(description="generate | extractive; null for a fixed reply "
                                    "(blocked, handed off, or nothing in the articles)")


class ErrorResponse(BaseModel):
    error: str


def create_api(services: Services) -> FastAPI:
    app = FastAPI(
        title="helpdesk",
        version="0.1.0",
        description="A governed customer-service assistant. Every message is redacted and checked "
        "before the model sees it; every answer is checked before it is returned.",
    )
    max_chars = services.settings.server.max_message_chars

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
            parts.append(f"{where}: {err['msg']}")
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    @app.exception_handler(HelpdeskError)
    async def _helpdesk_error(request: Request, exc: HelpdeskError) -> JSONResponse:
        status = 400 if isinstance(exc, BadInput) else 503
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.post(
        "/api/chat",
        response_model=ChatResponse,
        responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
        summary="One governed chat turn",
    )
    def chat(req: ChatRequest) -> ChatResponse | JSONResponse:
        if len(req.message) > max_chars:
            return JSONResponse({"error": f"message is over {max_chars} characters"}, status_code=413)
        return ChatResponse.model_validate(services.assistant.respond(req.session_id, req.message).as_dict())

    @app.get("/api/health", summary="Liveness and what is loaded")
    def health() -> dict:
        return {
            "status": "ok",
            "model": services.settings.model.name,
            "adapter": services.generator.adapter,
            "chunks": services.vectors.count(),
        }

    return app


def create_app(services: Services) -> FastAPI:
    import gradio as gr

    from ui.app import build_ui, theme

    app = create_api(services)
    return gr.mount_gradio_app(app, build_ui(services), path="/", footer_links=["api"], theme=theme())


def serve(config: str | None = None, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from core.settings import load_settings

    settings = load_settings(config)
    # Gradio keeps uploads in its temp folder: keep it inside the data directory.
    os.environ.setdefault("GRADIO_TEMP_DIR", str((settings.home / "uploads").resolve()))
    services = Services(settings)
    # Load everything before taking traffic: a missing model, or a collection embedded at another
    # precision, fails here, not on the first chat.
    services.guard, services.kb_embedder, services.vectors, services.generator, services.store  # noqa: B018
    services.ensure_samples()
    app = create_app(services)
    host = host or settings.server.host
    port = port or settings.server.port
    print(f"helpdesk: serving the UI and API on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
