"""One cache client per process, for the hot paths.

`django.core.cache.cache` resolves to a client per asyncio context under ASGI, so every request
served from a worker thread builds a new Redis client and opens a new connection (measured: the
guard's decision went from ~0.5 ms to several). The clients Django builds are thread-safe
(redis-py's pool; locmem's lock), so the hot paths share this one.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


_memos: list[VersionedMemo] = []
_prefetched = threading.local()


class VersionedMemo(Generic[T]):
    """A value per tenant built once per process and rebuilt when it changes anywhere.

    Writers call `changed(scope)`, which bumps a version counter in the cache; readers compare
    the versions of their scopes (one cache round trip, or none when `versions_prefetched`
    supplied them) with those of the value they hold. `scopes` are the extra scopes every
    get() checks besides the tenant's own (the rate card's platform catalog).
    """

    def __init__(self, name: str, build: Callable[[Tenant], T],
                 scopes: tuple[object, ...] = ()) -> None:
        self.name = name
        self.build = build
        self.scopes = scopes
        self._held: dict[int, tuple[list, T]] = {}
        _memos.append(self)

    def _key(self, scope: object) -> str:
        return f"aforo:{self.name}-version:{scope}"

    def keys(self, tenant: Tenant, *extra_scopes: object) -> list[str]:
        return [self._key(tenant.pk), *(self._key(s) for s in (extra_scopes or self.scopes))]

    def changed(self, scope: object) -> None:
        cache_count(self._key(scope))

    def get(self, tenant: Tenant, *extra_scopes: object) -> T:
        keys = self.keys(tenant, *extra_scopes)
        prefetched = getattr(_prefetched, "versions", None)
        if prefetched is not None and all(k in prefetched for k in keys):
            versions = [prefetched[k] for k in keys]
        else:
            found = shared_cache().get_many(keys)
            versions = [found.get(k, 0) for k in keys]
        held = self._held.get(tenant.pk)
        if held is None or held[0] != versions:
            held = (versions, self.build(tenant))
            self._held[tenant.pk] = held
        return held[1]


def memo_version_keys(tenant: Tenant) -> list[str]:
    """The version keys of every memo for a tenant (what `versions_prefetched` may supply)."""
    return [key for memo in _memos for key in memo.keys(tenant)]


def redis_version_reads(tenant: Tenant, redis_url: str,
                        ) -> tuple[list[str], Callable[[list], dict[str, int]]] | None:
    """When the shared cache is Redis at `redis_url`: the Redis keys holding the tenant's memo
    versions, and how to turn their raw values into `versions_prefetched`'s mapping, so a
    caller already talking to that Redis (ingest's claim) reads them in the same round trip.
    None when the cache is elsewhere (then get() asks the cache itself)."""
    from django.core.cache.backends.redis import RedisCache

    cache = shared_cache()
    if not isinstance(cache, RedisCache) or cache._servers != [redis_url]:
        return None
    keys = memo_version_keys(tenant)
    redis_keys = [cache.make_and_validate_key(k) for k in keys]

    def decode(values: list) -> dict[str, int]:
        # Django's Redis cache stores integers as their digits (RedisSerializer).
        return {k: int(v) if v not in (None, b"", "") else 0
                for k, v in zip(keys, values, strict=True)}

    return redis_keys, decode


@contextmanager
def versions_prefetched(versions: dict[str, int] | None) -> Iterator[None]:
    """Within the block, memos in this thread take their versions from `versions` (read by
    the caller in a round trip it made anyway) instead of asking the cache."""
    previous = getattr(_prefetched, "versions", None)
    _prefetched.versions = versions
    try:
        yield
    finally:
        _prefetched.versions = previous
