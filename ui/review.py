"""Review tab adapters: the queue, one item's whole story, claim and decide, all through the
review service. What is rendered is what is stored: redacted text only."""
from __future__ import annotations

import html
import json
import re

QUEUE_HEADERS = ["exchange", "status", "reasons", "rating", "action", "created", "decision"]
ANY = "any"


def _unmarked(text: str) -> str:
    """The text without citation markers, which only the shown answer carries."""
    return " ".join(re.sub(r"\s*\[\d+\]", "", text).split())


def or_none(value: str | None) -> str | None:
    return None if value in (None, "", ANY) else value


def queue_rows(review, actor, status, reason, action, rating, adapter, since, until) -> list[list]:
    items = review.queue(actor, or_none(status), or_none(reason), or_none(action), or_none(rating),
                         or_none(adapter), or_none(since), or_none(until), limit=1000)
    return [[i["exchange_id"], i["status"], ", ".join(i["reasons"]), i["rating"] or "", i["action"],
             i["created_at"][:19].replace("T", " "), i["decision"] or ""] for i in items]


def counts_line(review, actor) -> str:
    c = review.counts(actor)
    status = " · ".join(f"{k} **{v}**" for k, v in c["status"].items())
    reasons = " · ".join(f"{k.replace('_', ' ')} {v}" for k, v in c["open_by_reason"].items() if v)
    return f"{status}" + (f"  —  open: {reasons}" if reasons else "")


def _checks(verdict: dict | None) -> str:
    if not verdict:
        return ""
    scores = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in verdict["scores"].items())
    return f"`{verdict['action']}` {html.escape(', '.join(verdict['reasons']) or 'no reasons')} — {scores}"


def item_markdown(shown: dict) -> str:
    """The conversation up to and after this turn, its passages, every check's scores, feedback."""
    record = shown["exchange"]
    lines = [f"### Exchange `{shown['exchange_id']}` — {shown['status']}"
             + (f" ({shown['decision']} by {shown['decided_by']})" if shown["decision"] else ""),
             f"Reasons: **{', '.join(shown['reasons'])}** · model `{record['model']}` · adapter "
             f"`{record['adapter'] or 'base'}` · mode `{record.get('answer_mode') or 'fixed reply'}`"]
    if shown["claimed_by"]:
        lines.append(f"Claimed by **{html.escape(shown['claimed_by'])}** until {shown['claim_expires_at'][:19]}")
    lines.append("#### Conversation")
    for turn in shown["conversation"]:
        here = turn["id"] == shown["exchange_id"]
        lines.append(("**▶ this turn**\n\n" if here else "")
                     + f"> **Customer (redacted):** {html.escape(turn['redacted_input'])}\n>\n"
                     f"> **Assistant:** {html.escape(turn['answer'])}\n>\n> `{turn['action']}` "
                     f"{html.escape(', '.join(turn['reasons']))}")
    if record.get("raw_answer") and _unmarked(record["raw_answer"]) != _unmarked(record["answer"]):
        lines += ["#### The model's own answer (not shown)", html.escape(record["raw_answer"])]
    lines.append("#### Checks")
    lines.append(f"- input: {_checks(record['input_verdict'])}")
    lines.append(f"- output: {_checks(record['output_verdict'])}")
    if record["sources"]:
        lines.append("#### Passages")
        for i, s in enumerate(record["sources"], 1):
            lines.append(f"**[{i}] {html.escape(s['source'])}** (score {s['score']:.2f})\n\n"
                         f"{html.escape(s.get('text', '(text not kept for this older exchange)'))}")
    if shown["feedback"]:
        lines.append("#### Feedback")
        for f in shown["feedback"]:
            lines.append(f"- {'👍' if f['rating'] == 'up' else '👎'} {html.escape(f['reason'] or '')} by "
                         f"{html.escape(f['actor_id'])}"
                         + (f": *{html.escape(f['correction'])}*" if f["correction"] else ""))
    if shown["decisions"]:
        lines.append("#### Decisions")
        for d in shown["decisions"]:
            lines.append(f"- {d['created_at'][:19]} **{d['decision']}** by {html.escape(d['actor_id'])}"
                         + (f": {html.escape(d['note'])}" if d["note"] else ""))
    return "\n\n".join(lines)


def suggested_answer(shown: dict) -> str:
    """What the answer box starts with: an agent's correction if there is one, else the answer."""
    corrections = [f["correction"] for f in shown["feedback"] if f["correction"]]
    return corrections[-1] if corrections else shown["exchange"]["answer"]


def as_json(shown: dict) -> str:
    return json.dumps(shown, indent=2, ensure_ascii=False)
