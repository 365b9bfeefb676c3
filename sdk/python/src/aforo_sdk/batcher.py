"""The background sender: a bounded queue that a thread drains in batches to /api/v1/events.

The caller only appends to a deque under a lock (microseconds). The thread sends when a batch
is full or `flush_interval` has passed, retries with backoff on connection errors, 429 and 5xx
(honouring Retry-After), and keeps retrying a batch until it lands: events are idempotent by
`eventId`, so a batch re-sent after a lost answer never counts twice. Beyond `max_queue`
waiting events new ones are dropped, counted, and logged.
"""
from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

from aforo_sdk.transport import Transport

log = logging.getLogger("aforo_sdk")

EVENTS_PATH = "/api/v1/events"
MAX_BATCH = 1000  # the ingest endpoint's limit per request
RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
ENCODE_SLICE = 50
_dumps = json.JSONEncoder(separators=(",", ":")).encode


@dataclass
class BatcherStats:
    """What happened to the events handed to the batcher, for logs and tests."""

    enqueued: int = 0
    sent: int = 0           # answered by the server (accepted, duplicate or rejected)
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0       # the server refused the event itself (logged with its reason)
    dropped: int = 0        # never sent: queue full, or given up at shutdown
    retries: int = 0
    requests: int = 0


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Batcher:
    def __init__(self, transport: Transport, *, batch_size: int = 500,
                 flush_interval: float = 0.5, max_queue: int = 100_000,
                 backoff_base: float = 0.25, backoff_max: float = 30.0,
                 shutdown_timeout: float = 10.0) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH}")
        self.transport = transport
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.shutdown_timeout = shutdown_timeout
        self.stats = BatcherStats()
        self._queue: deque[dict] = deque()
        self._lock = threading.Lock()
        self._settled = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._give_up_at: float | None = None
        self._done = 0  # events sent or dropped after being queued
        self._last_drop_log = 0.0
        self._thread = threading.Thread(target=self._run, name="aforo-batcher", daemon=True)
        self._thread.start()

    # --- the caller's side -------------------------------------------------------------

    def put(self, event: dict) -> bool:
        """Queue one event; False (and counted as dropped) when the queue is full."""
        with self._lock:
            closed = self._closing.is_set()
            if closed or len(self._queue) >= self.max_queue:
                self.stats.dropped += 1
                dropped = True
            else:
                self._queue.append(event)
                self.stats.enqueued += 1
                dropped = False
                full = len(self._queue) >= self.batch_size
        if dropped:
            self._log_drop(closed)
            return False
        if full and not self._wake.is_set():
            self._wake.set()
        return True

    def _log_drop(self, closed: bool) -> None:
        now = time.monotonic()
        if now - self._last_drop_log >= 10.0 or self.stats.dropped == 1:
            self._last_drop_log = now
            why = "the client is closed" if closed else \
                f"the queue is full ({self.max_queue} events waiting)"
            log.warning("aforo: %s; %d events dropped so far", why, self.stats.dropped)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued before this call was sent or dropped."""
        with self._lock:
            target = self.stats.enqueued
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._settled:
            while self._done < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._settled.wait(left if left is not None else 0.5)
                self._wake.set()
        return True

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (retrying up to `timeout`), then stop the thread."""
        if self._closing.is_set():
            return
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._give_up_at = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout + 1.0)
        if self.stats.dropped:
            log.warning("aforo: %d events were dropped (queue full or unsent at exit)",
                        self.stats.dropped)

    @property
    def pending(self) -> int:
        return len(self._queue)

    # --- the thread's side -------------------------------------------------------------

    def _take(self) -> list[dict]:
        with self._lock:
            n = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _drop(self, n: int) -> None:
        with self._lock:
            self.stats.dropped += n
        self._settle(n)

    def _settle(self, n: int) -> None:
        with self._settled:
            self._done += n
            self._settled.notify_all()

    def _run(self) -> None:
        while True:
            if not self._closing.is_set() and len(self._queue) < self.batch_size:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
            batch = self._take()
            if batch:
                self._send(batch)
            elif self._closing.is_set():
                return

    def _giving_up(self) -> bool:
        return self._give_up_at is not None and time.monotonic() >= self._give_up_at

    def _sleep(self, seconds: float) -> None:
        if self._give_up_at is not None:
            seconds = min(seconds, max(0.0, self._give_up_at - time.monotonic()))
        self._closing.wait(seconds) if not self._closing.is_set() else time.sleep(seconds)

    def _encode(self, batch: list[dict]) -> bytes:
        # :TRICKY: one json.dumps of a whole batch holds the interpreter lock for a millisecond
        # or more, and a caller thread waiting for it waits that long. Encoding in slices with
        # a sleep(0) between them hands the lock back to callers every ~50 events.
        parts = []
        for start in range(0, len(batch), ENCODE_SLICE):
            parts.append(",".join(map(_dumps, batch[start:start + ENCODE_SLICE])))
            time.sleep(0)
        return ('{"events":[' + ",".join(parts) + "]}").encode()

    def _send(self, batch: list[dict]) -> None:
        body = self._encode(batch)
        attempt = 0
        while True:
            wait = None
            try:
                self.stats.requests += 1
                reply = self.transport.post(EVENTS_PATH, body)
            except Exception as exc:  # noqa: BLE001 (any failure to get an answer is retried)
                log.debug("aforo: sending %d events failed: %s", len(batch), exc)
            else:
                if reply.status == 200 or (reply.status == 400 and _is_report(reply)):
                    self._count(batch, reply)
                    return
                if reply.status not in RETRY_STATUSES:
                    log.error("aforo: the server refused a batch of %d events (%d): %s",
                              len(batch), reply.status, reply.body[:500])
                    self._drop(len(batch))
                    return
                wait = retry_after_seconds(reply.headers.get("retry-after"))
            if self._giving_up():
                with self._lock:
                    rest = len(self._queue)
                    self._queue.clear()
                log.error("aforo: giving up at shutdown: %d events unsent", len(batch) + rest)
                self._drop(len(batch) + rest)
                return
            attempt += 1
            self.stats.retries += 1
            if wait is None:
                cap = min(self.backoff_max, self.backoff_base * 2 ** min(attempt - 1, 16))
                wait = random.uniform(cap / 2, cap)
            self._sleep(wait)

    def _count(self, batch: list[dict], reply) -> None:
        report = reply.json() or {}
        self.stats.sent += len(batch)
        self.stats.accepted += int(report.get("accepted", 0))
        self.stats.duplicates += int(report.get("duplicates", 0))
        rejected = int(report.get("rejected", 0))
        self.stats.rejected += rejected
        if rejected:
            for result in report.get("results", []):
                if result.get("status") == "rejected":
                    log.warning("aforo: event %s rejected: %s (%s)", result.get("eventId"),
                                result.get("reason"), result.get("field"))
        self._settle(len(batch))


def _is_report(reply) -> bool:
    """A 400 that is the per-event report (every event rejected), not a malformed body."""
    try:
        body = reply.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "results" in body
