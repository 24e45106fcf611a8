"""The HTTP API over a real uvicorn server."""
from __future__ import annotations

import httpx


def test_chat_returns_the_ask_contract(server, services):
    before = len(services.store.exchanges(limit=10_000))
    r = httpx.post(f"{server}/api/chat", json={"message": "My email is jane.doe@example.com, how do refunds work?"},
                   timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"exchange_id", "session_id", "answer", "sources", "action", "reasons",
                         "redacted_input", "model", "adapter", "latency_ms"}
    assert "jane.doe@example.com" not in r.text
    assert len(services.store.exchanges(limit=10_000)) == before + 1
    again = httpx.post(f"{server}/api/chat", json={"session_id": body["session_id"], "message": "thanks"}, timeout=120)
    assert again.json()["session_id"] == body["session_id"]


def test_bad_requests_get_json_4xx_and_log_nothing(server, services):
    before = len(services.store.exchanges(limit=10_000))
    cases = [
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ({"json": {}}, 422),
        ({"json": {"message": 42}}, 422),
        ({"json": {"message": "hi", "extra": 1}}, 422),
        ({"json": {"message": "hi", "session_id": "../../etc"}}, 422),
        ({"json": {"message": "x" * 20_001}}, 413),
    ]
    for kwargs, status in cases:
        r = httpx.post(f"{server}/api/chat", timeout=30, **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert "error" in r.json()
    assert len(services.store.exchanges(limit=10_000)) == before


def test_empty_message_is_blocked_and_logged(server, services):
    r = httpx.post(f"{server}/api/chat", json={"message": ""}, timeout=30)
    assert r.status_code == 200 and r.json()["action"] == "block" and "empty_input" in r.json()["reasons"]


def test_openapi_schema_and_health(server):
    spec = httpx.get(f"{server}/openapi.json", timeout=30).json()
    assert "/api/chat" in spec["paths"]
    assert httpx.get(f"{server}/api/health", timeout=30).json()["status"] == "ok"
