"""Output checks on a streamed answer: nothing is shown before it is checked.

The model's tokens are held until a sentence ends; each sentence then runs the
output checks, with the text released so far as context (the way NeMo
Guardrails' streaming output rails check chunks with a window), and only what
passed is released:
- a sentence that a check rewrites (PII redacted) is released as rewritten;
- a sentence whose check substitutes for it (groundedness) is withheld;
- a block ends the answer: nothing more is released, and the block message
  stands in for the whole answer.
When the answer ends, the released text as a whole runs the checks once more
(a match that spans sentences), and that verdict is what the turn records.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from guardrails.registry import CheckContext
from guardrails.verdict import Action, OutputVerdict

if TYPE_CHECKING:
    from guardrails.guard import Guard

# A sentence ends at ., ! or ? followed by a space, or at a line break. Not after a digit:
# "Step 1. Open..." and "$4. Then" stay whole, so a list number is never checked on its own.
_SENTENCE_END = re.compile(r"(?<=[^\d\s][.!?])[ \t]+|\n+")


class CheckedStream:
    """Feed it the model's text as it arrives; it returns what may be shown, when it may."""

    def __init__(self, guard: "Guard", ctx: CheckContext) -> None:
        self.guard = guard
        self.ctx = ctx
        self.pending = ""  # generated, not yet checked
        self.released: list[str] = []
        self.withheld = 0  # sentences held back
        self.blocked = False
        self.piece_reasons: list[str] = []
        self.piece_action = Action.ALLOW
        self.substitute: str | None = None  # what a withholding check offered instead

    @property
    def shown(self) -> str:
        return "".join(self.released)

    def feed(self, text: str) -> list[str]:
        """Take more of the answer; return the pieces that passed, in order."""
        if self.blocked:
            return []
        self.pending += text
        out: list[str] = []
        start = 0
        for match in _SENTENCE_END.finditer(self.pending):
            piece = self.pending[start:match.end()]
            start = match.end()
            if piece.strip():
                released = self._check(piece)
                if self.blocked:
                    self.pending = ""
                    return out
                if released:
                    out.append(released)
            elif self.released:  # whitespace between sentences belongs to the text shown
                out.append(piece)
                self.released.append(piece)
        self.pending = self.pending[start:]
        return out

    def finish(self) -> list[str]:
        """The answer has ended: check what is left."""
        if self.blocked or not self.pending.strip():
            self.pending = ""
            return []
        piece, self.pending = self.pending, ""
        released = self._check(piece)
        return [released] if released else []

    def verdict(self) -> OutputVerdict:
        """The answer as a whole, once it has ended: what the turn shows and records."""
        if self.blocked:
            return OutputVerdict(self.guard.block_message, Action.BLOCK, _unique(self.piece_reasons), {})
        shown = self.shown.strip()
        if not shown and self.withheld:
            reasons = _unique(self.piece_reasons)
            return OutputVerdict(self.substitute or self.guard.block_message, self.piece_action, reasons, {}, True)
        whole = self.guard.inspect_output(shown, self.ctx)
        action = Action.worst([self.piece_action, whole.action])
        reasons = _unique([*self.piece_reasons, *whole.reasons])
        return OutputVerdict(whole.text, action, reasons, whole.scores, whole.replaced)

    def _check(self, piece: str) -> str:
        """Run the output checks on one piece; record the outcome; return what may be shown of it."""
        ctx = self.ctx.model_copy(update={"prior_text": self.shown})
        verdict = self.guard.inspect_output(piece, ctx)
        self.piece_action = Action.worst([self.piece_action, verdict.action])
        self.piece_reasons.extend(verdict.reasons)
        if verdict.action is Action.BLOCK:
            self.blocked = True
            return ""
        if verdict.replaced:
            self.withheld += 1
            self.substitute = self.substitute or verdict.text
            return ""
        # A rewritten piece (a redacted e-mail) keeps the spacing the model gave it.
        trailing = piece[len(piece.rstrip()):]
        released = verdict.text.rstrip() + trailing if verdict.text != piece else piece
        self.released.append(released)
        return released


def _unique(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
