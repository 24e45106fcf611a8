"""Every Gradio event, called as each role would call it, checks the role on the server.

Hiding a tab is for the eye: every event is also reachable through Gradio's HTTP API, so each
one is called here directly with a request carrying the user's name (what Gradio passes once the
login page let them in), with inputs filled in so the call would succeed if nothing checked.
The login page itself is exercised through a real browser in test_ui_browser.py.
"""
from __future__ import annotations

import inspect

import gradio as gr
import pytest
from sqlalchemy import text

from assistant.actor import cli_actor
from ui.app import build_ui

# What an agent or reviewer must never see in any event's output: the users list, the audit log,
# the knowledge base's own listing (a document only the catalog names), and dataset figures.
TABLES = ("users WHERE removed_at IS NULL", "api_tokens WHERE revoked_at IS NULL", "documents", "review_items",
          "review_decisions", "datasets", "jobs", "adapter_events", "ab_tests")


def _state(services) -> dict:
    with services.engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in TABLES}
        roles = dict(conn.execute(text("SELECT name, role FROM users")).all())
    return counts | {"roles": roles}


def _walk(demo, username: str, overrides: dict) -> dict[str, str]:
    """Call every event's function; returns what each produced (or the error it raised), as text."""
    out = {}
    for index, block_fn in demo.fns.items():
        fn = block_fn.fn
        if fn is None:
            continue
        args = [overrides.get(getattr(b, "elem_id", None), getattr(b, "value", None)) for b in block_fn.inputs]
        kwargs = {}
        for name, param in inspect.signature(fn).parameters.items():
            if param.annotation in (gr.Request, "gr.Request", "gr.Request | None"):
                kwargs[name] = gr.Request(username=username)
            elif param.annotation in (gr.SelectData, "gr.SelectData"):
                args.insert(0, gr.SelectData(None, {"index": [0, 0], "value": overrides["item-id"],
                                                   "row_value": [overrides["item-id"]]}))
        try:
            result = fn(*args, **kwargs)
            if inspect.isgenerator(result):
                result = list(result)
            out[f"{index}:{fn.__name__}"] = repr(result)
        except Exception as exc:  # gr.Error or a HelpdeskError: refused
            out[f"{index}:{fn.__name__}"] = f"raised {type(exc).__name__}: {exc}"
    return out


@pytest.fixture(scope="module")
def walk_setup(services, people, tmp_path_factory):
    from assistant.store import ExchangeRecord

    services.ensure_samples()
    flagged = [services.store.log_exchange(ExchangeRecord(
        f"s-ui-roles-{i}", "this is useless, fix it now", "Sorry.", "flag", ["sentiment:angry"],
        {"action": "flag", "reasons": [], "scores": {}, "entities": []}, None, [], "v1", "m", None,
        {"total": 1.0})) for i in range(2)]
    upload = tmp_path_factory.mktemp("ui-roles") / "zz-secret-plan.md"
    upload.write_text("# Secret plan\n\nThe zorblat discount is 90 percent.\n")
    token_id = services.users.tokens(cli_actor(), people["reviewer"].name)[0]["id"]
    overrides = {
        "message": "How do I track my order?", "doc-choice": "order-tracking.md", "doc-query": "refund",
        "upload": [str(upload)], "item-id": flagged[0], "decision": "approve", "review-answer": "x",
        "user-name": people["reviewer"].name, "user-role": "agent", "token-id": token_id,
        "rt-max-steps": 1, "rt-questions": 1, "rt-version": "no-such-version",
        "erase-customer": "dana.whitfield@example.com",
    }
    return build_ui(services), overrides, flagged


def test_an_agent_reaches_only_chat_and_feedback_through_any_event(services, people, walk_setup):
    demo, overrides, flagged = walk_setup
    before = _state(services)
    outputs = _walk(demo, people["agent"].name, overrides)
    assert len(outputs) >= 50  # every event of every tab was called
    assert _state(services) == before, "an agent's event changed documents, users, reviews or adapters"
    chat = [v for k, v in outputs.items() if k.split(":")[1].startswith("respond")]
    seen = "\n".join(v for k, v in outputs.items() if not k.split(":")[1].startswith("respond"))
    for secret in (flagged[1], people["admin"].name, "user_added", "token_created", "returns-policy.md",
                   "SFT rows", "zorblat"):
        assert secret not in seen, secret
    assert len(chat) == 2 and all("Source 1" in v for v in chat)  # chat itself works for them
    assert any("needs the reviewer role" in v for v in outputs.values())
    assert any("needs the admin role" in v for v in outputs.values())


def test_a_reviewer_works_the_queue_but_reaches_no_admin_event(services, people, walk_setup):
    demo, overrides, flagged = walk_setup
    before = _state(services)
    outputs = _walk(demo, people["reviewer"].name, overrides)
    after = _state(services)
    for table in ("review_items", "review_decisions"):  # the reviewer's own work
        before.pop(table), after.pop(table)
    assert after == before, "a reviewer's event changed documents, users or adapters"
    seen = "\n".join(outputs.values())
    assert flagged[1] in seen  # the queue is theirs to see
    for secret in ("user_added", "token_created", "SFT rows", "zorblat"):
        assert secret not in seen, secret
    decisions = services.review.show(cli_actor(), flagged[0])["decisions"]
    assert [d["actor_id"] for d in decisions if d["decision"] == "approve"] == [people["reviewer"].name]


def test_a_removed_user_is_refused_by_every_event(services, walk_setup):
    demo, overrides, _ = walk_setup
    services.users.add(cli_actor(), "ui-roles-gone", "admin")
    services.users.remove(cli_actor(), "ui-roles-gone")
    before = _state(services)
    outputs = _walk(demo, "ui-roles-gone", overrides)
    assert _state(services) == before
    assert "no longer exists" in "\n".join(outputs.values())
    for secret in ("order-tracking.md", "user_added", "zorblat"):
        assert secret not in "\n".join(outputs.values())
