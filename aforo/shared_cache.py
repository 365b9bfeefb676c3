"""One cache client per process, for the hot paths.

`django.core.cache.cache` resolves to a client per asyncio context under ASGI, so every request
served from a worker thread builds a new Redis client and opens a new connection (measured: the
guard's decision went from ~0.5 ms to several). The clients Django builds are thread-safe
(redis-py's pool; locmem's lock), so the hot paths share this one.
"""
from __future__ import annotations

import threading

from django.core.cache import BaseCache, caches

_client: BaseCache | None = None
_lock = threading.Lock()


def shared_cache() -> BaseCache:
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = caches.create_connection("default")
    return _client


def reset_shared_cache() -> None:
    """Forget the client (tests that change CACHES)."""
    global _client
    _client = None
