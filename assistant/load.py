"""`helpdesk bench load`: many agents chatting at once over HTTP, then the log counted.

Each simulated agent is its own user with its own API token (so the per-user
rate limit applies as it would to people) and holds one conversation of
`turns` messages, sent one after another; all agents run at once. Every
message carries a marker, so afterwards the exchange log is counted in the
database: a turn answered but not logged is lost, one logged twice is
duplicated. A 429 is waited out (its Retry-After) and retried, and counted.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import text

from assistant.actor import cli_actor
from assistant.bench import percentile

log = logging.getLogger(__name__)
QUESTIONS = ("How do I track my order?", "Can I return a blender I already opened?", "How long do refunds take?",
             "Do you ship internationally?", "How do I reset my password?")


def serve_in_thread(services) -> tuple[str, object]:
    """The real server (API only) on a free loopback port, in this process."""
    import uvicorn

    from assistant.server import create_api

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_api(services), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def bench_load(services, sessions: int, turns: int, url: str | None = None) -> dict:
    run = uuid.uuid4().hex[:8]
    admin = cli_actor()
    names = [f"load-{run}-{i}" for i in range(sessions)]
    tokens = []
    for name in names:
        services.users.add(admin, name, "agent")
        tokens.append(services.users.create_token(admin, name, "bench load")[1])
    server = None
    if url is None:
        url, server = serve_in_thread(services)
    latencies: list[float] = []
    refused = errors = 0
    lock = threading.Lock()

    def agent(i: int) -> None:
        nonlocal refused, errors
        session = None
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens[i]}"}, timeout=600) as client:
            for t in range(turns):
                message = f"{QUESTIONS[(i + t) % len(QUESTIONS)]} load{run}x{i}y{t}"
                while True:
                    started = time.perf_counter()
                    r = client.post("/api/chat", json={"message": message, "session_id": session})
                    if r.status_code == 429:
                        with lock:
                            refused += 1
                        time.sleep(float(r.headers.get("retry-after", "1")))
                        continue
                    break
                with lock:
                    if r.status_code == 200:
                        latencies.append((time.perf_counter() - started) * 1000)
                        session = r.json()["session_id"]
                    else:
                        errors += 1
                        log.warning("turn %s/%s: %s %s", i, t, r.status_code, r.text[:200])

    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(sessions) as pool:
            list(pool.map(agent, range(sessions)))
    finally:
        wall = time.perf_counter() - began
        if server is not None:
            server.should_exit = True
        for name in names:
            services.users.remove(admin, name)
    with services.engine.connect() as conn:
        rows = conn.execute(text("SELECT redacted_input, reasons FROM exchanges WHERE redacted_input LIKE :m"),
                            {"m": f"%load{run}x%"}).all()
    markers: dict[str, int] = {}
    for logged, _ in rows:
        marker = logged[logged.index(f"load{run}x"):].split()[0]
        markers[marker] = markers.get(marker, 0) + 1
    # A check that ran past its timeout blocks the turn (fail closed): under load that is lost work.
    timed_out = sum("check_timeout" in str(reasons) for _, reasons in rows)
    expected = {f"load{run}x{i}y{t}" for i in range(sessions) for t in range(turns)}
    return {
        "sessions": sessions, "turns_per_session": turns, "turns_sent": len(expected),
        "answered": len(latencies), "logged": sum(markers.values()),
        "lost": len(expected - set(markers)), "duplicated": sum(n - 1 for n in markers.values() if n > 1),
        "refused_429": refused, "errors": errors, "blocked_by_check_timeout": timed_out,
        "latency_ms": {"p50": round(percentile(latencies, 0.5), 1), "p95": round(percentile(latencies, 0.95), 1)},
        "turns_per_s": round(len(latencies) / wall, 3) if wall else None, "wall_s": round(wall, 1),
    }
