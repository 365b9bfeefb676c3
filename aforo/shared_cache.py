"""One cache client per process, for the hot paths.

`django.core.cache.cache` resolves to a client per asyncio context under ASGI, so every request
served from a worker thread builds a new Redis client and opens a new connection (measured: the
guard's decision went from ~0.5 ms to several). The clients Django builds are thread-safe
(redis-py's pool; locmem's lock), so the hot paths share this one.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from django.core.cache import BaseCache, caches

if TYPE_CHECKING:
    from aforo.models import Tenant

T = TypeVar("T")

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


def cache_count(key: str, by: int = 1, timeout: float | None = None) -> int:
    """Add `by` to a counter in the cache, creating it when absent; returns the new value."""
    cache = shared_cache()
    if cache.add(key, by, timeout):
        return by
    try:
        return cache.incr(key, by)
    except ValueError:  # expired between add and incr
        cache.set(key, by, timeout)
        return by


class VersionedMemo(Generic[T]):
    """A value per tenant built once per process and rebuilt when it changes anywhere.

    Writers call `changed(scope)`, which bumps a version counter in the cache; readers compare
    the versions of their scopes (one cache round trip) with those of the value they hold.
    """

    def __init__(self, name: str, build: Callable[[Tenant], T]) -> None:
        self.name = name
        self.build = build
        self._held: dict[int, tuple[list, T]] = {}

    def _key(self, scope: object) -> str:
        return f"aforo:{self.name}-version:{scope}"

    def changed(self, scope: object) -> None:
        cache_count(self._key(scope))

    def get(self, tenant: Tenant, *extra_scopes: object) -> T:
        keys = [self._key(tenant.pk), *(self._key(s) for s in extra_scopes)]
        found = shared_cache().get_many(keys)
        versions = [found.get(k, 0) for k in keys]
        held = self._held.get(tenant.pk)
        if held is None or held[0] != versions:
            held = (versions, self.build(tenant))
            self._held[tenant.pk] = held
        return held[1]
