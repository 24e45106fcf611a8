"""The HTTP API over a real uvicorn server."""
from __future__ import annotations

import json

import httpx


def test_chat_returns_the_ask_contract(server, services, people):
    before = len(services.store.exchanges(limit=10_000))
    r = httpx.post(f"{server}/api/chat", headers=people["agent"].headers, json={"message": "My email is jane.doe@example.com, how do refunds work?"},
                   timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"exchange_id", "session_id", "answer", "sources", "action", "reasons",
                         "redacted_input", "model", "adapter", "latency_ms", "answer_mode"}
    assert "jane.doe@example.com" not in r.text
    rows = services.store.exchanges(limit=10_000)
    assert len(rows) == before + 1
    row = next(x for x in rows if x["id"] == body["exchange_id"])
    assert row["session_id"] == body["session_id"] and row["answer"] == body["answer"]
    assert row["redacted_input"] == body["redacted_input"] == "My email is <EMAIL_ADDRESS_1>, how do refunds work?"
    assert "jane.doe@example.com" not in json.dumps(row)
    again = httpx.post(f"{server}/api/chat", headers=people["agent"].headers, json={"session_id": body["session_id"], "message": "thanks"}, timeout=120)
    assert again.json()["session_id"] == body["session_id"]


def test_bad_requests_get_json_4xx_and_log_nothing(server, services, people):
    before = len(services.store.exchanges(limit=10_000))
    cases = [
        ({"content": b"{not json", "headers": {"content-type": "application/json", **people["agent"].headers}}, 422),
        ({"json": {}}, 422),
        ({"json": {"message": 42}}, 422),
        ({"json": {"message": "hi", "extra": 1}}, 422),
        ({"json": {"message": "hi", "session_id": "../../etc"}}, 422),
        ({"json": {"message": "x" * 20_001}}, 413),
    ]
    for kwargs, status in cases:
        kwargs.setdefault("headers", people["agent"].headers)
        r = httpx.post(f"{server}/api/chat", timeout=30, **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert "error" in r.json()
    assert len(services.store.exchanges(limit=10_000)) == before


def test_empty_message_is_blocked_and_logged(server, services, people):
    r = httpx.post(f"{server}/api/chat", headers=people["agent"].headers, json={"message": ""}, timeout=30)
    assert r.status_code == 200 and r.json()["action"] == "block" and "empty_input" in r.json()["reasons"]
    row = next(x for x in services.store.exchanges(limit=50) if x["id"] == r.json()["exchange_id"])
    assert row["action"] == "block" and row["flagged"] is True and "empty_input" in row["reasons"]


def test_openapi_schema_and_health(server, people):
    spec = httpx.get(f"{server}/openapi.json", timeout=30).json()
    assert "/api/chat" in spec["paths"]
    assert httpx.get(f"{server}/api/health", timeout=30).json()["status"] == "ok"


def test_a_guard_fault_is_a_logged_block_not_a_500(server, services, monkeypatch, people):
    import guardrails.guard as guard_module

    def broken(results):
        raise TypeError("cannot fold")

    monkeypatch.setattr(guard_module, "combine", broken)
    before = len(services.store.exchanges(limit=10_000))
    r = httpx.post(f"{server}/api/chat", headers=people["agent"].headers, json={"message": "Where is my parcel?"}, timeout=60)
    assert r.status_code == 200 and r.json()["action"] == "block" and "check_error:guard" in r.json()["reasons"]
    assert len(services.store.exchanges(limit=10_000)) == before + 1


def test_a_turn_that_cannot_be_logged_is_a_503_with_no_answer(server, services, monkeypatch, people):
    def broken(record):
        raise OSError("disk full")

    monkeypatch.setattr(services.store, "log_exchange", broken)
    r = httpx.post(f"{server}/api/chat", headers=people["agent"].headers, json={"message": "How do refunds work?"}, timeout=120)
    assert r.status_code == 503
    assert set(r.json()) == {"error"} and "not be recorded" in r.json()["error"]
