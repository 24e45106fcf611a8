"""The HTTP server: the JSON API and the Gradio UI on one port.

Bad requests get a JSON error with a 4xx status; a turn that starts is always
logged (the service guarantees it), so no exchange is lost to a bad request.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.actor import Actor, require
from assistant.admission import Admission, TooBusy
from assistant.app import Services
from assistant.audit import ACTIONS as AUDIT_ACTIONS
from assistant.feedback import REASONS as FEEDBACK_REASONS
from assistant.review import DECISIONS, REASONS as REVIEW_REASONS, STATUSES
from core.db import storage_fault
from core.errors import BadInput, Conflict, Forbidden, HelpdeskError, NotFound, Unauthorized

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


ERRORS = {401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
          409: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}
STATUS = {BadInput: 400, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409}
bearer = HTTPBearer(auto_error=False, description="An API token: helpdesk token create NAME")


def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Actor:
    """Every route but health names its caller by API token; roles are checked by the services."""
    return request.app.state.services.users.actor_for_token(credentials.credentials if credentials else None)


# Module level: the routes' annotations are strings (postponed), resolved against this module.
Caller = Annotated[Actor, Depends(caller)]


class AuditEntry(BaseModel):
    at: str
    actor: str | None
    role: str | None
    via: str | None
    action: str
    target: str | None
    detail: dict


def create_api(services: Services) -> FastAPI:
    app = FastAPI(
        title="helpdesk",
        version="0.1.0",
        description="A governed customer-service assistant. Every message is redacted and checked "
        "before the model sees it; every answer is checked before it is returned.",
    )
    max_chars = services.settings.server.max_message_chars
    app.state.services = services
    server_settings = services.settings.server
    admission = Admission(server_settings.max_queued_turns, server_settings.user_turns_per_minute,
                          server_settings.max_running_turns)
    app.state.admission = admission

    @app.exception_handler(TooBusy)
    async def _too_busy(request: Request, exc: TooBusy) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"] if p != "body") or "body"
            parts.append(f"{where}: {err['msg']}")
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    @app.exception_handler(HelpdeskError)
    async def _helpdesk_error(request: Request, exc: HelpdeskError) -> JSONResponse:
        status = STATUS.get(type(exc), 503)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"error": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A read-only or full store is the operator's to fix: say so. Anything else is a bug, logged
        # with its traceback, and the caller still gets the one JSON error shape.
        fault = storage_fault(exc)
        if fault is not None:
            log.error("%s %s: %s", request.method, request.url.path, fault)
            return JSONResponse({"error": str(fault)}, status_code=503)
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": "internal error; the server's log has the details"}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and wrong methods get the same JSON shape as every other error.
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.post("/api/feedback", response_model=FeedbackResponse, responses=ERRORS,
              summary="Thumbs up or down on an answer, with a reason and an optional corrected answer")
    def feedback(req: FeedbackRequest, actor: Caller) -> FeedbackResponse:
        given = services.feedback.give(actor, req.exchange_id, req.rating, req.reason, req.correction)
        return FeedbackResponse.model_validate(given.as_dict())

    @app.get("/api/review", response_model=list[ReviewItem], responses=ERRORS,
             summary="The review queue, oldest first, filtered")
    def review_list(
        actor: Caller,
        status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
        reason: Literal[REVIEW_REASONS] | None = None,  # type: ignore[valid-type]
        action: str | None = None, rating: Literal["up", "down"] | None = None, adapter: str | None = None,
        since: str | None = Query(None, description="ISO date or time, inclusive"),
        until: str | None = Query(None, description="ISO date or time, exclusive"),
        limit: int = Query(200, ge=1, le=10000),
    ) -> list[dict]:
        return services.review.queue(actor, status, reason, action, rating, adapter, since, until, limit)

    @app.get("/api/review/{exchange_id}", responses=ERRORS,
             summary="One item: its exchange record, the whole conversation, feedback and decisions")
    def review_show(exchange_id: str, actor: Caller) -> dict:
        return services.review.show(actor, exchange_id)

    @app.post("/api/review/{exchange_id}/claim", response_model=ReviewItem, responses=ERRORS,
              summary="Claim an item; 409 while another reviewer's claim holds")
    def review_claim(exchange_id: str, actor: Caller) -> dict:
        return services.review.claim(actor, exchange_id)

    @app.post("/api/review/{exchange_id}/decide", response_model=ReviewItem, responses=ERRORS,
              summary="approve | correct | reject | false_alarm | escalate, with a note")
    def review_decide(exchange_id: str, req: DecideRequest, actor: Caller) -> dict:
        return services.review.decide(actor, exchange_id, req.decision, req.answer, req.note,
                                      req.label)

    @app.post("/api/review/{exchange_id}/reopen", response_model=ReviewItem, responses=ERRORS,
              summary="Put a decided item back in the queue")
    def review_reopen(exchange_id: str, actor: Caller, req: ReopenRequest | None = None) -> dict:
        return services.review.reopen(actor, exchange_id, req.note if req else None)

    @app.post(
        "/api/chat",
        response_model=ChatResponse,
        responses={**ERRORS, 413: {"model": ErrorResponse}, 429: {"model": ErrorResponse}},
        summary="One governed chat turn",
    )
    def chat(req: ChatRequest, actor: Caller) -> ChatResponse | JSONResponse:
        if len(req.message) > max_chars:
            return JSONResponse({"error": f"message is over {max_chars} characters"}, status_code=413)
        with admission.turn(actor.id):
            result = services.assistant.respond(req.session_id, req.message, actor)
        return ChatResponse.model_validate(result.as_dict())

    @app.get("/api/conversations/{session_id}", responses=ERRORS,
             summary="Your own conversation, oldest turn first (redacted); 404 for anyone else's")
    def conversation(session_id: str, actor: Caller) -> list[dict]:
        return services.store.conversation(session_id, actor.id)

    @app.get("/api/me", responses=ERRORS, summary="Who the token stands for")
    def me(actor: Caller) -> dict:
        return actor.as_dict()

    @app.get("/api/documents", responses=ERRORS, summary="The knowledge base's documents (reviewers, admins)")
    def documents(actor: Caller) -> list[dict]:
        return services.documents.list(actor)

    @app.get("/api/audit", response_model=list[AuditEntry], responses=ERRORS,
             summary="The audit log, newest first (admins)")
    def audit(
        actor: Caller,
        action: Literal[AUDIT_ACTIONS] | None = None,  # type: ignore[valid-type]
        who: str | None = Query(None, description="The acting user"),
        since: str | None = Query(None, description="ISO date or time, inclusive"),
        until: str | None = Query(None, description="ISO date or time, exclusive"),
        limit: int = Query(500, ge=1, le=100_000),
    ) -> list[dict]:
        return services.audit.entries(actor, action, who, since, until, limit)

    @app.get("/metrics", response_class=PlainTextResponse, responses=ERRORS,
             summary="Prometheus metrics for operators (admins; scrape with a bearer token)")
    def metrics(actor: Caller) -> PlainTextResponse:
        from assistant.monitoring import prometheus

        require(actor, "admin")
        queue = services.review.counts(actor)["status"]
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

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str) -> None:
        # Without this an unknown /api/ path falls through to the UI mounted at /, with another error shape.
        raise NotFound(f"no route /api/{rest} (see /docs)")

    return app


def create_app(services: Services) -> FastAPI:
    import gradio as gr

    from ui.app import build_ui, theme

    app = create_api(services)
    def login(name: str, password: str) -> bool:
        return services.users.authenticate(name, password, "ui") is not None

    return gr.mount_gradio_app(app, build_ui(services), path="/", footer_links=["api"], theme=theme(), auth=login,
                               auth_message="Log in with your helpdesk user name and password.")


def start_purging(services: Services) -> threading.Thread:
    """Retention on a schedule: a daemon thread that purges at start and then every
    `retention.purge_every_minutes`; a failed purge is logged and retried next time."""
    from assistant.actor import Actor

    system = Actor("system:retention", "admin", "cli")
    every = services.settings.retention.purge_every_minutes * 60

    def loop() -> None:
        while True:
            try:
                services.erasure.purge(system, services.settings.retention.days)
            except Exception:
                log.exception("the retention purge failed; retrying in %.0f s", every)
            time.sleep(every)

    thread = threading.Thread(target=loop, daemon=True, name="retention")
    thread.start()
    return thread


def serve(config: str | None = None, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from core.settings import load_settings

    settings = load_settings(config)
    # Gradio keeps uploads in its temp folder: keep it inside the data directory.
    os.environ.setdefault("GRADIO_TEMP_DIR", str((settings.home / "uploads").resolve()))
    services = Services(settings)
    # Load everything before taking traffic: a missing model, or a collection embedded at another
    # precision, fails here, not on the first chat.
    services.guard, services.kb_embedder, services.vectors, services.extractor, services.generator, services.store  # noqa: B018
    services.serving_adapter()  # a promoted adapter whose files are gone stops start-up
    services.ensure_samples()
    password = services.users.ensure_first_admin()
    if password is not None:  # shown this once; only its hash is stored
        print(f"helpdesk: first start: created the admin user `admin` with the one-time password {password}\n"
              "helpdesk: log in with it, then create users in the Admin tab or with `helpdesk users add`",
              flush=True)
    app = create_app(services)
    start_purging(services)
    host = host or settings.server.host
    port = port or settings.server.port
    print(f"helpdesk: serving the UI and API on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
