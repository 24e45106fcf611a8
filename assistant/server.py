"""The HTTP server: the JSON API and the Gradio UI on one port.

Bad requests get a JSON error with a 4xx status; a turn that starts is always
logged (the service guarantees it), so no exchange is lost to a bad request.
"""
from __future__ import annotations

import logging
import os
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.actor import Actor
from assistant.app import Services
from assistant.feedback import REASONS as FEEDBACK_REASONS
from assistant.review import DECISIONS, REASONS as REVIEW_REASONS, STATUSES
from core.errors import BadInput, Conflict, HelpdeskError, NotFound

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


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exchange_id: str
    rating: Literal["up", "down"]
    reason: Literal[FEEDBACK_REASONS] | None = None  # type: ignore[valid-type]
    correction: str | None = Field(None, description="The answer as it should have been; redacted before it is stored.")


class FeedbackResponse(BaseModel):
    feedback_id: str
    exchange_id: str
    rating: str
    reason: str | None
    correction: str | None = Field(description="As stored: personal data redacted.")


class ReviewItem(BaseModel):
    exchange_id: str
    session_id: str
    created_at: str
    status: str = Field(description="pending | claimed | done")
    reasons: list[str] = Field(description="flagged | handed_off | blocked | low_groundedness | down_voted")
    rating: str | None
    action: str
    adapter: str | None
    claimed_by: str | None
    claim_expires_at: str | None
    decision: str | None
    decided_by: str | None
    decided_at: str | None


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal[DECISIONS]  # type: ignore[valid-type]
    answer: str | None = Field(None, description="For `correct`: the answer that becomes the reference.")
    note: str | None = None
    label: str | None = Field(None, description="`check:label` for a guardrail check, e.g. `injection:attack` "
                              "for an attack that got through.")


class ReopenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = None


# Module level: the routes' annotations are strings (postponed), resolved against this module.
User = Annotated[str | None, Header(alias="X-Helpdesk-User", pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
                                    description="Who is calling, until API tokens exist")]
ERRORS = {404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


def api_actor(user: str | None) -> Actor:
    """The API caller. Until users and tokens exist, a caller may name itself in `X-Helpdesk-User`
    (so two reviewers' claims can be told apart); the default is one shared API caller."""
    return Actor(f"api:{user}" if user else "api", "admin", "api")


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
        status = {BadInput: 400, NotFound: 404, Conflict: 409}.get(type(exc), 503)
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.post("/api/feedback", response_model=FeedbackResponse, responses=ERRORS,
              summary="Thumbs up or down on an answer, with a reason and an optional corrected answer")
    def feedback(req: FeedbackRequest, user: User = None) -> FeedbackResponse:
        given = services.feedback.give(api_actor(user), req.exchange_id, req.rating, req.reason, req.correction)
        return FeedbackResponse.model_validate(given.as_dict())

    @app.get("/api/review", response_model=list[ReviewItem], responses=ERRORS,
             summary="The review queue, oldest first, filtered")
    def review_list(
        user: User = None,
        status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
        reason: Literal[REVIEW_REASONS] | None = None,  # type: ignore[valid-type]
        action: str | None = None, rating: Literal["up", "down"] | None = None, adapter: str | None = None,
        since: str | None = Query(None, description="ISO date or time, inclusive"),
        until: str | None = Query(None, description="ISO date or time, exclusive"),
        limit: int = Query(200, ge=1, le=10000),
    ) -> list[dict]:
        return services.review.queue(api_actor(user), status, reason, action, rating, adapter, since, until, limit)

    @app.get("/api/review/{exchange_id}", responses=ERRORS,
             summary="One item: its exchange record, the whole conversation, feedback and decisions")
    def review_show(exchange_id: str, user: User = None) -> dict:
        return services.review.show(api_actor(user), exchange_id)

    @app.post("/api/review/{exchange_id}/claim", response_model=ReviewItem, responses=ERRORS,
              summary="Claim an item; 409 while another reviewer's claim holds")
    def review_claim(exchange_id: str, user: User = None) -> dict:
        return services.review.claim(api_actor(user), exchange_id)

    @app.post("/api/review/{exchange_id}/decide", response_model=ReviewItem, responses=ERRORS,
              summary="approve | correct | reject | false_alarm | escalate, with a note")
    def review_decide(exchange_id: str, req: DecideRequest, user: User = None) -> dict:
        return services.review.decide(api_actor(user), exchange_id, req.decision, req.answer, req.note,
                                      req.label)

    @app.post("/api/review/{exchange_id}/reopen", response_model=ReviewItem, responses=ERRORS,
              summary="Put a decided item back in the queue")
    def review_reopen(exchange_id: str, req: ReopenRequest | None = None, user: User = None) -> dict:
        return services.review.reopen(api_actor(user), exchange_id, req.note if req else None)

    @app.post(
        "/api/chat",
        response_model=ChatResponse,
        responses={413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
        summary="One governed chat turn",
    )
    def chat(req: ChatRequest, user: User = None) -> ChatResponse | JSONResponse:
        if len(req.message) > max_chars:
            return JSONResponse({"error": f"message is over {max_chars} characters"}, status_code=413)
        result = services.assistant.respond(req.session_id, req.message, api_actor(user))
        return ChatResponse.model_validate(result.as_dict())

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics for operators")
    def metrics() -> PlainTextResponse:
        from assistant.monitoring import prometheus

        queue = services.review.counts(Actor("metrics", "admin", "api"))["status"]
        body = prometheus(services.engine, services.adapters.serving_version(), queue)
        return PlainTextResponse(body, media_type="text/plain; version=0.0.4")

    @app.get("/api/health", summary="Liveness and what is loaded")
    def health() -> dict:
        return {
            "status": "ok",
            "model": services.settings.model.name,
            "adapter": services.adapters.serving_version(),
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
    services.serving_adapter()  # a promoted adapter whose files are gone stops start-up
    services.ensure_samples()
    app = create_app(services)
    host = host or settings.server.host
    port = port or settings.server.port
    print(f"helpdesk: serving the UI and API on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
