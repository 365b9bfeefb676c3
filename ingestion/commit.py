"""Group commit: concurrent requests in a process share one ledger insert.

ClickHouse wants few, large inserts (each insert makes a part that must be merged). A request
hands its rows to the committer and waits; a flusher thread gathers what arrives within
`max_wait` (default 0: whatever queued while the previous insert ran, which is the batching
that matters under load), inserts it once, and answers every request in that insert
with its outcome: success, or the exception, so no request is acknowledged before its rows are
written.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any

from aforo import eventstore
from aforo.eventstore import EventStore

Row = dict[str, Any]


class GroupCommitter:
    def __init__(self, *, table: str = "ledger", max_wait: float = 0.0,
                 max_rows: int = 20_000) -> None:
        self.table = table
        self.max_wait = max_wait
        self.max_rows = max_rows
        self._queue: list[tuple[list[Row], Future, EventStore]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, rows: list[Row]) -> Future:
        """Queue rows for the next insert; the future resolves when that insert has finished."""
        future: Future = Future()
        if not rows:
            future.set_result(0)
            return future
        store = eventstore.get_store()  # resolved in the caller's context (tests pin a store)
        with self._cond:
            self._queue.append((rows, future, store))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="aforo-group-commit",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return future

    def insert(self, rows: list[Row]) -> int:
        """Submit and wait: the synchronous form for callers outside an event loop."""
        return self.submit(rows).result()

    def _take(self) -> list[tuple[list[Row], Future, EventStore]]:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            first_at = time.monotonic()
            while (sum(len(r) for r, _f, _s in self._queue) < self.max_rows
                   and time.monotonic() - first_at < self.max_wait):
                self._cond.wait(timeout=self.max_wait / 4)
            taken, self._queue = self._queue, []
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            by_store: dict[int, list[tuple[list[Row], Future, EventStore]]] = {}
            for item in taken:
                by_store.setdefault(id(item[2]), []).append(item)
            for items in by_store.values():
                self._flush(items)

    def _flush(self, items: list[tuple[list[Row], Future, EventStore]]) -> None:
        rows = [row for chunk, _f, _s in items for row in chunk]
        try:
            items[0][2].insert(self.table, rows)
        except BaseException as exc:  # every waiting request learns the insert failed
            for _rows, future, _s in items:
                future.set_exception(exc)
            return
        for chunk, future, _s in items:
            future.set_result(len(chunk))


committer = GroupCommitter()
