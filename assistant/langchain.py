"""helpdesk inside a LangChain chain (langchain-core): the knowledge base as a retriever, the
governed turn as a Runnable. Both go through the service layer, so search is the same as
`helpdesk search` and a turn is the same as `helpdesk ask` (redaction, checks, the log
write, fail-closed blocking), whoever calls it.

    from assistant.langchain import open_helpdesk
    helpdesk = open_helpdesk()                   # settings as for the CLI
    docs = helpdesk.retriever(k=3).invoke("can I return an opened blender?")
    result = helpdesk.turn().invoke("can I return an opened blender?")
"""
from __future__ import annotations

from typing import Any, Iterator

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import ConfigDict

from assistant.actor import Actor
from assistant.service import Done, Token
from core.errors import BadInput

# In-process callers already hold the services, so these are defaults, not a guard: a chain asks
# as an agent, and searches the knowledge base with a reviewer's read-only reach.
LANGCHAIN_ACTOR = Actor("langchain", "agent", "api")
LANGCHAIN_READER = Actor("langchain", "reviewer", "api")


class HelpdeskRetriever(BaseRetriever):
    """The knowledge base's search (hybrid by default, live chunks only) as LangChain `Document`s,
    with the chunk's metadata: source, title, heading, page, chunk id and score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    services: Any
    actor: Actor = LANGCHAIN_READER
    k: int = 5
    mode: str | None = None  # vector | bm25 | hybrid | hybrid+rerank; None: retrieval.mode
    filters: dict | None = None  # Chroma metadata filter, as `helpdesk search --filter`

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        hits = self.services.documents.search(self.actor, query, self.k, self.mode, self.filters)
        return [Document(page_content=h.text, id=h.chunk_id,
                         metadata={"source": h.source, "title": h.title, "heading": h.heading, "page": h.page,
                                   "chunk_id": h.chunk_id, "score": round(h.score, 4)}) for h in hits]


def _message(value: Any) -> tuple[str, str | None]:
    """(message, session id) from a string, a chat message, or {"message", "session_id"?}."""
    if isinstance(value, str):
        return value, None
    if isinstance(value, BaseMessage) and isinstance(value.content, str):
        return value.content, None
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return value["message"], value.get("session_id")
    raise BadInput("a governed turn takes a string, a chat message, or {'message': str, 'session_id'?: str}")


class GovernedTurn(Runnable[Any, dict]):
    """One governed chat turn. `invoke` returns the same object as `helpdesk ask --json`;
    `stream` yields the answer's text as it passes the output checks, then that object."""

    def __init__(self, services, actor: Actor = LANGCHAIN_ACTOR) -> None:
        self.services = services
        self.actor = actor

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        message, session = _message(input)
        return self.services.assistant.respond(session, message, self.actor).as_dict()

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[str | dict]:
        message, session = _message(input)
        for event in self.services.assistant.stream(session, message, self.actor):
            if isinstance(event, Token):
                yield event.text
            elif isinstance(event, Done):
                yield event.result.as_dict()


class Helpdesk:
    """The entry point: the services from settings, and the LangChain pieces over them."""

    def __init__(self, services) -> None:
        self.services = services

    def retriever(self, k: int = 5, mode: str | None = None, filters: dict | None = None,
                  actor: Actor = LANGCHAIN_READER) -> HelpdeskRetriever:
        return HelpdeskRetriever(services=self.services, k=k, mode=mode, filters=filters, actor=actor)

    def turn(self, actor: Actor = LANGCHAIN_ACTOR) -> GovernedTurn:
        return GovernedTurn(self.services, actor)


def open_helpdesk(config: str | None = None, collection: str | None = None) -> Helpdesk:
    """Settings as for the CLI (`config`, $HELPDESK_CONFIG or ./helpdesk.yaml, HELPDESK_* variables)."""
    from assistant.app import Services
    from core.settings import load_settings

    settings = load_settings(config)
    if collection:
        settings.retrieval.collection = collection
    return Helpdesk(Services(settings))
