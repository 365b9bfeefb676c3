"""Read ahead: the next item of an iterator produced in a thread while the caller works on the
current one, so an export's engine reads overlap its encoding and writing.

The embedded engine releases the GIL while it runs a query, and a ClickHouse server's client
waits on its socket, so the overlap is real on more than one core. At most two items are held
at a time: the one the caller has, and the one being read (then waiting in a queue of one).
An error raised by the source in the thread is raised to the caller at that item; a caller
that stops early (closes the generator, or drops it) stops the thread and joins it once the
read under way finishes.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

from aforo import eventstore

T = TypeVar("T")

THREAD_NAME = "export-read-ahead"
_END = object()


def read_ahead(source: Iterator[T], *, name: str = THREAD_NAME) -> Iterator[T]:
    """The items of `source`, each next one read in a thread while the caller has this one.

    The thread reads through the event store the caller's thread uses (`eventstore.use`), and
    closes `source` and its own connections when it ends."""
    store = eventstore.get_store()
    ready: queue.Queue = queue.Queue(maxsize=1)
    # A read starts only once the caller has taken the item before it, so the queue is always
    # empty when the thread puts into it (a put never blocks), and two items are held at most.
    wanted = threading.Semaphore(1)
    stop = threading.Event()

    def work() -> None:
        try:
            with eventstore.use(store):
                while True:
                    wanted.acquire()
                    if stop.is_set():
                        return
                    item = next(source, _END)
                    last = item is _END
                    ready.put((item, None))
                    del item
                    if last:
                        return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            ready.put((_END, exc))
        finally:
            try:
                close = getattr(source, "close", None)
                if close is not None:
                    close()
            finally:
                store.close_thread()

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                item, error = ready.get(timeout=1)
            except queue.Empty:
                if thread.is_alive() or not ready.empty():
                    continue
                raise RuntimeError("the read-ahead thread ended without an item") from None
            if error is not None:
                raise error
            if item is _END:
                return
            wanted.release()  # the next read overlaps the caller's work on this item
            yield item
            del item
    finally:
        stop.set()
        wanted.release()
        thread.join()
        while not ready.empty():  # a read that finished after the caller stopped
            ready.get_nowait()
