"""Many agents at once over the real HTTP server: nothing lost or duplicated; a full queue and a
user over their rate get 429 with Retry-After, never a timeout."""
from __future__ import annotations

import threading

import httpx
import pytest

from assistant.admission import Admission, TooBusy


def test_a_small_load_run_loses_and_duplicates_nothing(services):
    from assistant.load import bench_load

    report = bench_load(services, sessions=3, turns=3)
    assert report["turns_sent"] == 9 and report["answered"] == 9 and report["errors"] == 0
    assert report["logged"] == 9 and report["lost"] == 0 and report["duplicated"] == 0
    assert report["blocked_by_check_timeout"] == 0
    assert report["latency_ms"]["p95"] >= report["latency_ms"]["p50"] > 0


def test_the_queue_and_the_rate_limit_refuse_with_retry_after():
    admission = Admission(max_queued=1, per_minute=2)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        with admission.turn("ana"):
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    inside.wait(10)
    with pytest.raises(TooBusy) as full:
        with admission.turn("ben"):
            pass
    assert full.value.retry_after >= 1 and "answering 1 turns" in str(full.value)
    release.set()
    worker.join()
    with admission.turn("ana"):  # ana's second turn this minute
        pass
    with pytest.raises(TooBusy) as limited:
        with admission.turn("ana"):
            pass
    assert 1 <= limited.value.retry_after <= 60 and "in the last minute" in str(limited.value)
    with admission.turn("ben"):  # others are not held back by ana's limit
        pass


def test_only_so_many_turns_run_at_once_and_the_rest_go_first_come_first_served():
    import time

    admission = Admission(max_queued=10, per_minute=100, max_running=2)
    running, most, order = [0], [0], []
    lock = threading.Lock()

    def turn(name: str) -> None:
        with admission.turn(name):
            with lock:
                order.append(name)
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.1)
            with lock:
                running[0] -= 1

    threads = []
    for i in range(6):
        threads.append(threading.Thread(target=turn, args=(f"agent{i}",)))
        threads[-1].start()
        time.sleep(0.02)  # each arrives after the one before
    for thread in threads:
        thread.join(10)
    assert most[0] == 2 and order == [f"agent{i}" for i in range(6)]
    assert admission.in_flight == 0


def test_over_http_a_user_past_the_rate_limit_gets_429_with_retry_after(services, people):
    from assistant.load import serve_in_thread

    limit = services.settings.server.user_turns_per_minute
    services.settings.server.user_turns_per_minute = 1
    try:
        url, server = serve_in_thread(services)
    finally:
        services.settings.server.user_turns_per_minute = limit
    try:
        headers = people["reviewer"].headers
        first = httpx.post(f"{url}/api/chat", headers=headers, json={"message": ""}, timeout=60)
        second = httpx.post(f"{url}/api/chat", headers=headers, json={"message": ""}, timeout=60)
        assert first.status_code == 200
        assert second.status_code == 429 and set(second.json()) == {"error"}
        assert 1 <= int(second.headers["retry-after"]) <= 60
    finally:
        server.should_exit = True
