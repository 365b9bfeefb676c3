"""The batcher against a stand-in Aforo on loopback: size and time flushes, retries on 429 and
503 honouring Retry-After, the bounded queue's drops counted and logged, flush at exit."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from aforo_sdk import Aforo
from aforo_sdk.batcher import retry_after_seconds
from sdk_fakes import Answer, ingest_answer, sent_events


def _event(n: int) -> dict:
    return {"eventId": f"evt_{n}", "customerId": "c1", "inputTokens": n}


def test_a_full_batch_goes_at_once_and_the_rest_on_the_timer(aforo_server):
    client = Aforo(aforo_server.url, "tok", "acme", batch_size=10, flush_interval=1.5,
                   default=False)
    try:
        for n in range(25):
            client.record(_event(n))
        deadline = time.monotonic() + 1.0
        while len(aforo_server.received("/api/v1/events")) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        sizes = [len(r["json"]["events"]) for r in aforo_server.received("/api/v1/events")]
        assert sizes == [10, 10]  # two full batches before the timer
        deadline = time.monotonic() + 4
        while len(sent_events(aforo_server)) < 25 and time.monotonic() < deadline:
            time.sleep(0.02)
        sizes = [len(r["json"]["events"]) for r in aforo_server.received("/api/v1/events")]
        assert sizes == [10, 10, 5]  # the remainder when the interval passed
        assert [e["eventId"] for e in sent_events(aforo_server)] == \
            [f"evt_{n}" for n in range(25)]
        # The server has the last batch; the client counts it once it has read the answer.
        assert client.flush(timeout=5)
        assert client.stats.accepted == 25
    finally:
        client.close(timeout=2)


def test_429_and_503_are_retried_after_the_servers_retry_after(aforo_server):
    answers = iter([Answer(429, {"error": {"code": "rate_limited"}},
                           headers={"Retry-After": "0.4"}),
                    Answer(503, {"error": {"code": "event_store_unavailable"}},
                           headers={"Retry-After": "0.3"})])
    times = []

    def flaky(request):
        times.append(time.monotonic())
        return next(answers, None) or ingest_answer(request)

    aforo_server.route("POST", "/api/v1/events", flaky)
    client = Aforo(aforo_server.url, "tok", "acme", flush_interval=0.01, backoff_base=0.01,
                   default=False)
    try:
        client.record(_event(1))
        assert client.flush(timeout=5)
        assert len(times) == 3
        assert times[1] - times[0] >= 0.39 and times[2] - times[1] >= 0.29
        assert (client.stats.retries, client.stats.accepted, client.stats.dropped) == (2, 1, 0)
        # the same batch each time: one event id, re-sent, landing once at the server
        assert [e["eventId"] for e in sent_events(aforo_server)] == ["evt_1"] * 3
    finally:
        client.close(timeout=2)


def test_connection_errors_back_off_until_the_server_answers(aforo_server):
    calls = []

    def down_then_up(request):
        calls.append(time.monotonic())
        return Answer(502, {"error": "bad gateway"}) if len(calls) < 4 else \
            ingest_answer(request)

    aforo_server.route("POST", "/api/v1/events", down_then_up)
    client = Aforo(aforo_server.url, "tok", "acme", flush_interval=0.01, backoff_base=0.1,
                   default=False)
    try:
        client.record(_event(1))
        assert client.flush(timeout=5)
        gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
        assert len(gaps) == 3 and gaps[2] > gaps[0]  # exponential (with jitter, at least x2/2)
        assert client.stats.accepted == 1
    finally:
        client.close(timeout=2)


def test_beyond_the_queue_bound_events_are_dropped_counted_and_logged(aforo_server, caplog):
    aforo_server.route("POST", "/api/v1/events",
                       Answer(503, {"error": "down"}, headers={"Retry-After": "30"}))
    client = Aforo(aforo_server.url, "tok", "acme", batch_size=5, flush_interval=0.01,
                   max_queue=20, default=False)
    with caplog.at_level(logging.WARNING, logger="aforo_sdk"):
        for n in range(5):
            client.record(_event(n))
        deadline = time.monotonic() + 2
        while not aforo_server.received("/api/v1/events") and time.monotonic() < deadline:
            time.sleep(0.01)
        # one batch of 5 is in flight (retrying); 20 wait; the next 7 are dropped
        results = [client.record(_event(n)) for n in range(5, 32)]
    assert results.count(False) == 7 and client.stats.dropped == 7
    assert client.batcher.pending == 20
    assert any("dropped" in r.getMessage() for r in caplog.records)
    client.close(timeout=0.5)  # still down: closing retries until its timeout, then counts
    assert client.stats.dropped == 7 + 25
    assert any("dropped" in r.getMessage() and "32" in r.getMessage() for r in caplog.records)


def test_a_refused_batch_is_logged_and_not_retried(aforo_server, caplog):
    aforo_server.route("POST", "/api/v1/events",
                       Answer(401, {"error": {"code": "not_authenticated"}}))
    client = Aforo(aforo_server.url, "bad", "acme", flush_interval=0.01, default=False)
    with caplog.at_level(logging.ERROR, logger="aforo_sdk"):
        client.record(_event(1))
        assert client.flush(timeout=5)
    client.close(timeout=1)
    assert len(aforo_server.received("/api/v1/events")) == 1
    assert client.stats.dropped == 1
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_rejected_events_are_counted_with_their_reason(aforo_server, caplog):
    aforo_server.route("POST", "/api/v1/events", Answer(200, {
        "accepted": 1, "duplicates": 0, "rejected": 1,
        "results": [{"eventId": "evt_1", "status": "accepted"},
                    {"eventId": "evt_2", "status": "rejected", "field": "inputTokens",
                     "reason": "must be >= 0"}]}))
    client = Aforo(aforo_server.url, "tok", "acme", flush_interval=0.01, default=False)
    with caplog.at_level(logging.WARNING, logger="aforo_sdk"):
        client.record(_event(1))
        client.record(_event(2))
        assert client.flush(timeout=5)
    client.close(timeout=1)
    assert (client.stats.accepted, client.stats.rejected) == (1, 1)
    assert any("evt_2" in r.getMessage() and "must be >= 0" in r.getMessage()
               for r in caplog.records)


def test_what_is_queued_is_sent_when_the_process_exits(aforo_server):
    """No flush, no close: the interpreter's exit sends the queue."""
    src = Path(__file__).resolve().parents[1] / "src"
    script = textwrap.dedent(f"""
        from aforo_sdk import Aforo
        client = Aforo({aforo_server.url!r}, "tok", "acme", flush_interval=60)
        for n in range(7):
            client.record({{"eventId": f"exit_{{n}}"}})
    """)
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=30)
    assert sorted(e["eventId"] for e in sent_events(aforo_server)) == \
        [f"exit_{n}" for n in range(7)]


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("garbage") is None
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    assert 95 <= retry_after_seconds(date) <= 101
