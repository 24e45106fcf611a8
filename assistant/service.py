"""One chat turn end to end: guard in -> retrieve -> do the passages answer it? -> generate
(streamed) -> guard out -> one log write.

Only the redacted text crosses the first step. Any error blocks the turn, flags
it and still logs it: no turn is ever lost or passed unchecked. The answer
streams as it passes the output checks, a sentence at a time; a turn whose log
write fails is not shown at all.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Generator as GeneratorOf
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Literal, Sequence, Union

from assistant.actor import Actor
from assistant.generator import Generator
from assistant.prompt import PROMPT_VERSION, SYSTEM_PROMPT, build_messages
from assistant.store import ExchangeRecord, Store
from core.db import storage_fault
from core.errors import TurnNotLogged
from finetune.registry import AdapterRef
from guardrails.guard import REDACTION_FAILED, Guard
from guardrails.registry import CheckContext
from guardrails.verdict import Action, InputVerdict, OutputVerdict
from retrieval.extract import ExtractiveAnswerer
from retrieval.memory import QuestionMemory
from retrieval.search import Retriever
from retrieval.store import Hit

log = logging.getLogger(__name__)

EMPTY_ANSWER = (
    "I wasn't able to put together an answer to that. "
    "Would you like me to pass this conversation to a human colleague?"
)
NO_CONTEXT_ANSWER = (
    "I couldn't find this in our help articles, so I don't want to guess. "
    "Would you like me to pass this conversation to a human colleague?"
)


@dataclass(frozen=True)
class TurnResult:
    exchange_id: str
    session_id: str
    answer: str
    sources: list[Hit]
    action: str
    reasons: list[str]
    redacted_input: str
    model: str | None
    adapter: str | None
    latency_ms: dict[str, float]
    entities: list[dict] = field(default_factory=list)
    answer_mode: str | None = None  # generate | extractive; None for a fixed reply

    def as_dict(self) -> dict:
        return {
            "exchange_id": self.exchange_id,
            "session_id": self.session_id,
            "answer": self.answer,
            "sources": [h.as_dict(with_text=False) for h in self.sources],
            "action": self.action,
            "reasons": self.reasons,
            "redacted_input": self.redacted_input,
            "model": self.model,
            "adapter": self.adapter,
            "latency_ms": self.latency_ms,
            "answer_mode": self.answer_mode,
        }


@dataclass(frozen=True)
class InputChecked:
    verdict: InputVerdict


@dataclass(frozen=True)
class Retrieved:
    hits: list[Hit]


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Queued:
    """The model is writing other agents' answers; this turn's starts after `ahead` of them."""

    ahead: int


@dataclass(frozen=True)
class Done:
    result: TurnResult


TurnEvent = Union[InputChecked, Retrieved, Queued, Token, Done]
AnswerMode = Literal["generate", "extractive", "auto"]
AutoTrust = Literal["gate", "groundedness"]


def _wholly_grounded(verdict: OutputVerdict) -> bool:
    """Every sentence of the model's answer passed groundedness: none was held back."""
    return not verdict.replaced and not any(r.startswith("ungrounded") for r in verdict.reasons)


AdapterChoice = Callable[[str], "AdapterRef | None"]


class Assistant:
    """`adapters(session_id)` names the adapter that serves a conversation's next turn (the
    registry's promoted one, or an A/B arm); without it the base model serves."""

    def __init__(self, guard: Guard, retriever: Retriever, generator: Generator, store: Store, history_turns: int = 3,
                 answer_mode: AnswerMode = "generate", extractor: ExtractiveAnswerer | None = None,
                 adapters: AdapterChoice | None = None, context_sentences: int = 0,
                 auto_trust: AutoTrust = "gate", memory: QuestionMemory | None = None) -> None:
        """`context_sentences` > 0: the model sees the passages cut to that many best sentences
        (and each passage's best; `ExtractiveAnswerer.evidence`), not whole. `auto_trust`: in
        `auto` mode, "gate" asks the model only when the adapter that serves beat the extractive
        answers at the evaluation gate; "groundedness" asks it always."""
        if answer_mode != "generate" and extractor is None:
            raise ValueError(f"answer mode {answer_mode!r} needs an extractive answerer")
        self.guard = guard
        self.retriever = retriever
        self.generator = generator
        self.store = store
        self.history_turns = history_turns
        self.answer_mode = answer_mode
        self.extractor = extractor
        self.adapters = adapters
        self.context_sentences = context_sentences if extractor is not None else 0
        self.auto_trust = auto_trust
        self.memory = memory

    def _asks_model(self, adapter: AdapterRef | None) -> bool:
        """Whether this turn's answer may be the model's. The groundedness check passes answers
        that are on topic but wrong (the base model's "You have 3 days to report it" beside a
        passage that says 7): `auto` shows a model's words only once the gate measured them
        answering better than the passages' own sentences, or an A/B test is there to measure them."""
        if self.answer_mode == "extractive":
            return False
        if self.answer_mode == "auto" and self.auto_trust == "gate":
            return adapter is not None and adapter.trusted
        return True

    def recall(self, question: str, hits: list[Hit], history: Sequence) -> tuple[list[Hit], bool | None]:
        """What a close labelled question says of a conversation's first question: its article's
        passages listed first and answered from (True), the articles do not cover it (False), or
        nothing (None; follow-ups, and a question close to none)."""
        if self.memory is None or history or not hits:
            return hits, None
        recalled = self.memory.recall(question, *self.retriever.catalog_state())
        if recalled is None:
            return hits, None
        if recalled.source is None:
            return hits, False
        if not any(h.source == recalled.source for h in hits):
            return hits, None
        return [h for h in hits if h.source == recalled.source] + [h for h in hits if h.source != recalled.source], True

    def prompt(self, question: str, hits: Sequence[Hit], history: Sequence[tuple[str, str]] = ()) -> list[dict]:
        """The model's messages for a question and its passages, as served."""
        if self.context_sentences:
            hits = self.extractor.evidence(question, hits, [q for q, _ in history], self.context_sentences)
        return build_messages(question, hits, history)

    def _generate(self, messages: list[dict], ctx: CheckContext, latency: dict[str, float], started: float,
                  trace: dict, adapter: AdapterRef | None) -> GeneratorOf[TurnEvent, None, OutputVerdict | None]:
        """Stream the model's answer as it passes the output checks; its verdict, or None when
        the model said nothing. `trace` gets the raw answer and what served it, for the log."""
        checked = self.guard.checked_stream(ctx)
        checking = 0.0  # time spent in the output checks while streaming
        began = time.perf_counter()
        generated = []
        line = getattr(self.generator, "line", None)
        place = line.join() if line is not None else None
        try:
            if place is not None:  # tell the agent their place while they wait, as it changes
                told = None
                while not place.wait(0 if told is None else 0.5):
                    if (ahead := place.ahead()) != told and ahead > 0:
                        told = ahead
                        yield Queued(ahead)

            def show(pieces: list[str]) -> Iterator[Token]:
                for shown in pieces:  # what the agent waits for before text appears
                    latency.setdefault("first_shown", round((time.perf_counter() - started) * 1000, 1))
                    yield Token(shown)

            served: dict = {}
            trace["generation"] = served
            turn = {"place": place} if place is not None else {}
            for piece in self.generator.stream(messages, served=served, adapter=adapter, **turn):
                if not generated:
                    latency["first_token"] = round((time.perf_counter() - started) * 1000, 1)
                generated.append(piece)
                since = time.perf_counter()
                released = checked.feed(piece)
                checking += time.perf_counter() - since
                yield from show(released)
                if checked.blocked:
                    break  # nothing more of this answer can be shown
        finally:
            if place is not None:
                place.leave()
        since = time.perf_counter()
        yield from show(checked.finish())
        trace["raw_answer"] = "".join(generated)
        verdict = checked.verdict() if trace["raw_answer"].strip() else None
        checking += time.perf_counter() - since
        latency["generate"] = round((time.perf_counter() - began - checking) * 1000, 1)
        latency["guard_output"] = round(checking * 1000, 1)
        return verdict

    def _redacted(self, raw: str | None) -> str | None:
        """The model's own words may hold PII it made up: stored only redacted."""
        if raw is None:
            return None
        try:
            # Stripped first: the dataset build reads it stripped, and spaCy's NER can tag a word
            # in the stripped text that it did not tag with the whitespace around it.
            return self.guard.redact_until_clean(raw.strip())
        except Exception:
            log.exception("could not redact the raw answer; it is not stored")
            return None

    def respond(self, session_id: str | None, text: str, actor: Actor | None = None) -> TurnResult:
        for event in self.stream(session_id, text, actor):
            if isinstance(event, Done):
                return event.result
        raise RuntimeError("turn ended without a result")  # stream always ends with Done

    def stream(self, session_id: str | None, text: str, actor: Actor | None = None) -> Iterator[TurnEvent]:
        """The turn's events. `Token`s carry only text that passed the output checks (see
        `guardrails.streaming`); `Done` comes only once the exchange is logged. If the log
        write fails, `TurnNotLogged` is raised instead of `Done`: the answer is not shown."""
        session_id = session_id or uuid.uuid4().hex
        if actor is not None:  # every door names one; in-process library callers may not
            self.store.own_session(session_id, actor.id)  # another user's conversation: NotFound
        latency: dict[str, float] = {}
        started = time.perf_counter()

        def lap(stage: str, since: float) -> float:
            now = time.perf_counter()
            latency[stage] = round((now - since) * 1000, 1)
            return now

        verdict = InputVerdict(REDACTION_FAILED, (), Action.BLOCK, ("check_error:guard",), {})
        hits: list[Hit] = []
        answer = ""
        action = Action.BLOCK
        reasons: list[str] = []
        output_verdict = None
        answer_mode: str | None = None  # what produced the answer shown: generate | extractive | None (a fixed reply)
        finished = False
        messages: list[dict] | None = None
        trace: dict = {}  # the model's raw answer and what served it, when it was asked
        adapter: str | None = None  # the adapter version that serves (or would serve) this turn
        try:
            verdict = self.guard.inspect_input(text, session_id)
            action, reasons = verdict.action, list(verdict.reasons)
            mark = lap("guard_input", started)
            yield InputChecked(verdict)
            ctx = CheckContext(redacted_input=verdict.redacted_text, system_prompt=SYSTEM_PROMPT)
            if action is Action.BLOCK:
                answer = self.guard.block_message
            elif action is Action.HANDOFF:
                answer = self.guard.handoff_message
            else:
                history = self.store.history(session_id, self.history_turns)
                hits = self.retriever.context_for(verdict.redacted_text, [q for q, _ in history])
                hits, covered = self.recall(verdict.redacted_text, hits, history)
                if covered is not None:
                    reasons.append("recalled:covered" if covered else "recalled:not_covered")
                mark = lap("retrieve", mark)
                yield Retrieved(hits)
                grounded = ctx.model_copy(update={"context_texts": tuple(h.text for h in hits)})
                if not hits:
                    answer = NO_CONTEXT_ANSWER
                    reasons.append("no_context")
                else:
                    # Logged in every mode: retraining rebuilds the prompt a model would have seen.
                    earlier = [q for q, _ in history]
                    messages = self.prompt(verdict.redacted_text, hits, history)
                    chosen = self.adapters(session_id) if self.adapters else None
                    adapter = chosen.version if chosen else None
                    # Whether the passages answer at all is judged before any model is asked, in
                    # every mode: a model given passages that do not answer the question still
                    # writes something, and often something the passages make sound grounded.
                    extract = (self.extractor.answer(verdict.redacted_text, hits, earlier, covered)
                               if self.extractor is not None else None)
                    mark = lap("extract", mark)
                    if self.extractor is not None and extract is None:
                        output_verdict, answer = None, NO_CONTEXT_ANSWER
                        reasons.append("no_answer_in_context")
                    else:
                        if self._asks_model(chosen):
                            output_verdict = yield from self._generate(messages, grounded, latency, started, trace,
                                                                       chosen)
                            mark = time.perf_counter()
                            if output_verdict is not None and output_verdict.action is not Action.BLOCK and (
                                    self.answer_mode == "generate" or _wholly_grounded(output_verdict)):
                                answer_mode = None if output_verdict.replaced else "generate"
                                if not output_verdict.replaced and self.extractor is not None:
                                    output_verdict = replace(
                                        output_verdict, text=self.extractor.cite(output_verdict.text, hits))
                            elif (output_verdict is not None and self.answer_mode == "auto"
                                  and output_verdict.action is not Action.BLOCK):
                                # Kept for review and retraining: why the model's own answer was not shown.
                                reasons.extend(f"generated:{r}" for r in output_verdict.reasons)
                        if self.answer_mode == "generate" and output_verdict is None:
                            answer = EMPTY_ANSWER  # never show a blank bubble; a reviewer should see why
                            reasons.append("empty_answer")
                            action = Action.worst([action, Action.FLAG])
                        elif extract is not None and (self.answer_mode == "extractive" or (
                                self.answer_mode == "auto" and answer_mode is None
                                and (output_verdict is None or output_verdict.action is not Action.BLOCK))):
                            output_verdict = self.guard.inspect_output(extract.text, grounded)
                            answer_mode = "extractive"
                            if output_verdict.action is not Action.BLOCK:
                                yield Token(output_verdict.text)
                            now = time.perf_counter()  # added to the generated answer's checks, if any
                            latency["guard_output"] = round(latency.get("guard_output", 0.0) + (now - mark) * 1000, 1)
                            mark = now
            if output_verdict is None:  # a fixed reply, checked whole; it makes no claim about the passages
                output_verdict = self.guard.inspect_output(answer, ctx)
                mark = lap("guard_output", mark)
            answer = output_verdict.text
            action = Action.worst([action, output_verdict.action])
            reasons.extend(r for r in output_verdict.reasons if r not in reasons)
            finished = True
        except GeneratorExit:
            # The caller went away mid-answer (a closed browser tab): still log the turn.
            reasons.append("interrupted")
            action = Action.worst([action, Action.FLAG])
            raise
        except Exception as exc:
            log.exception("turn failed; blocking it")
            answer = self.guard.block_message
            action = Action.BLOCK
            reasons.append(f"error:{type(exc).__name__}")
            finished = True
        finally:
            latency["total"] = round((time.perf_counter() - started) * 1000, 1)
            record = ExchangeRecord(
                session_id=session_id,
                redacted_input=verdict.redacted_text,
                answer=answer,
                action=action.value,
                reasons=reasons,
                input_verdict=verdict.as_dict(),
                output_verdict=output_verdict.as_dict() if output_verdict else None,
                sources=[h.as_dict(with_text=True) | {"title": h.title, "heading": h.heading} for h in hits],
                prompt_version=PROMPT_VERSION,
                model=self.generator.model_name,
                adapter=(trace.get("generation") or {}).get("adapter", adapter),
                latency_ms=latency,
                answer_mode=answer_mode,
                messages=messages,
                raw_answer=self._redacted(trace.get("raw_answer")),
                generation=trace.get("generation") or None,
                actor=actor.as_dict() if actor else None,
            )
            why = ""
            try:
                exchange_id: str | None = self.store.log_exchange(record)
            except Exception as exc:
                log.exception("the exchange could not be logged; the answer is withheld")
                exchange_id = None
                fault = storage_fault(exc)
                why = f" ({fault})" if fault else ""
        if not finished:
            return
        if exchange_id is None:
            raise TurnNotLogged(f"the turn could not be recorded, so its answer is withheld{why}; please try again")
        yield Done(TurnResult(
            exchange_id, session_id, answer, hits, action.value, reasons, verdict.redacted_text,
            self.generator.model_name, (trace.get("generation") or {}).get("adapter", adapter), latency,
            [e.as_dict() for e in verdict.entities], answer_mode,
        ))
