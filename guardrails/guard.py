"""The guard: redaction, then the policy's checks, folded into one verdict.

Fail closed: if redaction or any check raises, the message is blocked and
flagged with a `check_error:<name>` reason; a check that runs past the
policy's `check_timeout_ms` blocks with `check_timeout:<name>`. Raw text never
leaves this module when redaction fails: the verdict then carries no text.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Sequence

from core.errors import ConfigError
from guardrails.ner_training import HELPDESK_NER
from guardrails.policy import Policy, load_policy
from guardrails.redaction import Redactor
from guardrails.registry import Check, CheckContext, build_checks, registered
from guardrails.streaming import CheckedStream
from guardrails.verdict import Action, CheckResult, Entity, InputVerdict, OutputVerdict, combine, well_formed

log = logging.getLogger(__name__)
REDACTION_FAILED = "[message withheld: redaction failed]"
QUEUE_TIMEOUTS = 10  # how many check timeouts a check may wait for a free worker
_PII_ACTION = {"redact": Action.ALLOW, "flag": Action.FLAG, "block": Action.BLOCK}


def redactor_for(policy: Policy, origin: str = "policy", spacy_model: str = HELPDESK_NER) -> Redactor:
    """The policy's PII redaction alone, without its checks (for text people type outside a chat)."""
    try:
        return Redactor(
            entities=list(policy.pii.entities),
            recognizers=[r.model_dump() for r in policy.pii.recognizers],
            allow_list=policy.pii.allow_list,
            score_threshold=policy.pii.score_threshold,
            spacy_model=spacy_model,
        )
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


class Guard:
    def __init__(
        self,
        policy: Policy,
        origin: str = "policy",
        spacy_model: str = HELPDESK_NER,
        vault=None,
        embedder=None,
        cache_dir: Path | None = None,
    ) -> None:
        self.policy = policy
        self.vault = vault  # per-conversation pseudonyms; None: plain <TYPE> placeholders
        self.timeout_s = policy.check_timeout_ms / 1000
        # Checks run on worker threads so that a hung one can be abandoned (and the message blocked).
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="guard")
        self.redactor = redactor_for(policy, origin, spacy_model)
        specs_in = [s.model_dump() for s in policy.input_checks]
        specs_out = [s.model_dump() for s in policy.output_checks]
        checks = registered()
        needs = {n for spec in specs_in + specs_out if spec["type"] in checks
                 for n in getattr(checks[spec["type"]], "needs", ())}
        if "embedder" in needs and embedder is None:
            from core.embeddings import get_embedder

            embedder = get_embedder()
        deps = {"redactor": self.redactor, "embedder": embedder, "cache_dir": cache_dir}
        self.input_checks: list[Check] = build_checks(specs_in, "input", origin, "input_checks", deps)
        self.output_checks: list[Check] = build_checks(specs_out, "output", origin, "output_checks", deps)
        # Input checks that embed the message share one embedding, remembered by the embedder.
        self._embeds_input = embedder if any("embedder" in getattr(type(c), "needs", ()) for c in self.input_checks) else None

    @classmethod
    def from_file(
        cls,
        path: str | Path | None = None,
        spacy_model: str = HELPDESK_NER,
        vault=None,
        embedder=None,
        cache_dir: Path | None = None,
    ) -> "Guard":
        policy, origin = load_policy(path)
        return cls(policy, origin, spacy_model, vault, embedder, cache_dir)

    @property
    def block_message(self) -> str:
        return self.policy.block_message

    @property
    def handoff_message(self) -> str:
        return self.policy.handoff_message

    def redact(self, text: str, entities: Sequence[str] | None = None) -> tuple[str, list[Entity]]:
        return self.redactor.redact(text, entities)

    def redact_until_clean(self, text: str) -> str:
        """For text to store: redacted until reading it again finds nothing (see the redactor)."""
        return self.redactor.redact_until_clean(text)

    def inspect_input(self, text: str, session_id: str | None = None) -> InputVerdict:
        """Redact (with the conversation's pseudonyms when there is a vault and a session), then check.

        Never raises: any fault anywhere in here (a check, folding the results, the vault) blocks
        the message with a `check_error:` reason, and the verdict then carries no text."""
        try:
            return self._inspect_input(text, session_id)
        except Exception:
            log.exception("the input guard failed; blocking the message")
            return InputVerdict(REDACTION_FAILED, (), Action.BLOCK, ("check_error:guard",), {})

    def _inspect_input(self, text: str, session_id: str | None) -> InputVerdict:
        # Model work on the message as typed (its embedding, model scores) runs while Presidio
        # reads it: torch releases the GIL, so they share the cores instead of queueing
        # (60-word messages, 2 cores: p50 72 ms serial, 55 ms overlapped).
        early = [self._pool.submit(check.prefetch, text) for check in self.input_checks if hasattr(check, "prefetch")]
        if self._embeds_input is not None:
            early.append(self._pool.submit(self._embeds_input.embed, [text]))
        try:
            entities = self.redactor.analyze(text)
        except Exception:
            log.exception("redaction failed; blocking the message")
            return InputVerdict(REDACTION_FAILED, (), Action.BLOCK, ("check_error:redaction",), {})
        if self.vault is not None and session_id:
            try:
                redacted = self.vault.pseudonymize(session_id, text, [(e.start, e.end, e.type) for e in entities])
            except Exception:
                log.exception("the vault failed; blocking the message")
                return InputVerdict(REDACTION_FAILED, tuple(entities), Action.BLOCK, ("check_error:vault",), {})
        else:
            redacted = self.redactor.replace(text, entities)
        pii = CheckResult(
            "pii",
            Action.worst([_PII_ACTION[self.policy.pii.entities.get(e.type, "redact")] for e in entities]),
            tuple(
                sorted({f"pii_{self.policy.pii.entities.get(e.type, 'redact')}:{e.type}" for e in entities
                        if self.policy.pii.entities.get(e.type, "redact") != "redact"})
            ),
            {"entities": len(entities)},
        )
        ctx = CheckContext(redacted_input=redacted, original=text)
        for future in early:
            try:
                future.result(timeout=self.timeout_s)
            except Exception:  # not fatal here: the check itself redoes the work and fails closed
                log.warning("prefetch for an input check failed", exc_info=True)
        results = [pii, *self._run(self.input_checks, redacted, ctx)]
        action, reasons, scores = combine(results)
        for result in results:  # a check may rewrite the text (a secret masked, invisible characters dropped)
            if result.text is not None:
                redacted = result.text
        return InputVerdict(redacted, tuple(entities), action, reasons, scores)

    def reveal(self, session_id: str, text: str) -> str:
        """Placeholders back to the customer's values, only for the reply shown to the agent."""
        return self.vault.reveal(session_id, text) if self.vault is not None else text

    def inspect_output(self, answer: str, ctx: CheckContext) -> OutputVerdict:
        """The answer as it may be shown. Never raises: a fault blocks it."""
        try:
            results = self._run(self.output_checks, answer, ctx)
            action, reasons, scores = combine(results)
            text = answer
            for result in results:
                if result.text is not None:
                    text = result.text
            replaced = any(r.replacement for r in results)
        except Exception:
            log.exception("the output guard failed; blocking the answer")
            action, reasons, scores, replaced = Action.BLOCK, ("check_error:guard",), {}, False
        if action is Action.BLOCK:
            text = self.block_message
        return OutputVerdict(text, action, reasons, scores, replaced)

    def checked_stream(self, ctx: CheckContext) -> CheckedStream:
        """An answer's output checks, run on each sentence as it streams (see `guardrails.streaming`)."""
        return CheckedStream(self, ctx)

    def _timed(self, fn, *args):
        """`fn(*args)` on the pool, given `timeout_s` from when it starts. Time spent waiting
        for a free worker does not count (under load, many turns' checks queue there, and a
        check that has not started has not hung); a pool that stays full, for
        `QUEUE_TIMEOUTS` timeouts, does count, so a jam still blocks rather than waits."""
        started = threading.Event()

        def run():
            started.set()
            return fn(*args)

        future = self._pool.submit(run)
        if not started.wait(self.timeout_s * QUEUE_TIMEOUTS):
            future.cancel()
            raise FutureTimeout()
        return future.result(timeout=self.timeout_s)

    def _run(self, checks: list[Check], text: str, ctx: CheckContext) -> list[CheckResult]:
        """Run checks in order; each sees the text as the previous one left it."""
        results: list[CheckResult] = []
        for check in checks:
            try:
                result = self._timed(check.check, text, ctx)
            except FutureTimeout:
                log.error("check %s ran past %.0f ms; blocking", check.name, self.timeout_s * 1000)
                result = CheckResult(check.name, Action.BLOCK, (f"check_timeout:{check.name}",), {}, None)
            except Exception:  # fail closed: a broken check is a block, never a pass
                log.exception("check %s failed; blocking", check.name)
                result = CheckResult(check.name, Action.BLOCK, (f"check_error:{check.name}",), {}, None)
            if not well_formed(result, check.name):
                log.error("check %s returned a malformed result (%s); blocking", check.name, type(result).__name__)
                result = CheckResult(check.name, Action.BLOCK, (f"check_error:{check.name}",), {}, None)
            results.append(result)
            if result.text is not None:
                text = result.text
            if result.action is Action.BLOCK:
                break  # later checks cannot make a block less strict
        return results
