"""Exactly-once intake: an eventId counts once per tenant, however often and concurrently sent.

Two layers. Claims (Redis `SET NX` across processes in server mode; a lock-guarded dict in the
embedded mode, which is one process by construction) stop two requests from inserting the same
event at once. The ledger itself is the durable truth: before inserting, the claimed ids are
looked up there, so an event written before a Redis restart is still a duplicate. A claim is
marked done only after its insert succeeded, and released if the insert failed, so a failed
event is never counted and its retry lands once.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from aforo.ledger.query import LedgerQuery, Table

CLAIM_TTL_MS = 60_000
DONE_TTL_S = 300  # a fast path for quick retries; the ledger is the lasting truth
WAIT_FOR_PENDING_S = 10.0
DONE = b"done"


class ClaimsHeldElsewhere(Exception):
    """Events of a batch stayed claimed by another request that neither wrote nor released
    them in time (it may have died, or lost Redis before it could release): they are not
    known to be written, so the batch must be retried, never counted as duplicates."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} events of this batch are being written by another request; "
                         "the others were handled. Retry the batch shortly.")
        self.count = count


@dataclass
class ClaimResult:
    """Of the ids asked for: ours to insert, already counted, and in flight in another request."""

    claimed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    read: list = field(default_factory=list)  # the values of `reads`, in the same round trip


# A request never waits for another while it holds claims of its own (two requests with
# overlapping batches would wait for each other): it claims what it can, writes and finishes
# those, and only then waits for the ids that were in flight elsewhere.


class LocalClaims:
    """The embedded mode's claims: one process owns the store, so a dict under a lock is enough."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str], bytes] = {}
        self._cond = threading.Condition()

    url = None  # no Redis: nothing to read alongside

    def try_claim(self, tenant: str, ids: list[str], token: bytes,
                  reads: list[str] = ()) -> ClaimResult:
        result = ClaimResult()
        with self._cond:
            for event_id in ids:
                state = self._state.get((tenant, event_id))
                if state is None:
                    self._state[(tenant, event_id)] = token
                    result.claimed.append(event_id)
                elif state == DONE:
                    result.duplicates.append(event_id)
                else:
                    result.pending.append(event_id)
        return result

    def wait(self, tenant: str, ids: list[str], timeout: float = WAIT_FOR_PENDING_S) -> None:
        """Until none of `ids` is in flight (each is done or released), or the timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(self._state.get((tenant, e)) not in (None, DONE) for e in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(timeout=min(left, 0.05))

    def finish(self, tenant: str, ids: Iterable[str], token: bytes, *, ok: bool) -> None:
        with self._cond:
            for event_id in ids:
                key = (tenant, event_id)
                if self._state.get(key) == token:
                    if ok:
                        self._state[key] = DONE
                    else:
                        del self._state[key]
            self._cond.notify_all()


class RedisClaims:
    """Claims shared by every process: `SET key token NX PX` per event, pipelined per batch."""

    def __init__(self, url: str) -> None:
        import redis

        # A Redis that stops answering fails the request (503) within seconds, never hangs it.
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        # One round trip per batch: claim every free key, and say of the others whether they
        # are done (1 claimed, 2 done, 3 in flight elsewhere).
        # The first ARGV[3] keys are claimed; the rest are only read (GET, '' when absent),
        # so the caller's other reads (the rate card's and plans' versions) share the trip.
        self.url = url
        self._claim = self.redis.register_script(
            "local out = {} local n = tonumber(ARGV[3]) "
            "for i, key in ipairs(KEYS) do "
            "  if i > n then out[i] = redis.call('GET', key) or '' "
            "  elseif redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then out[i] = 1 "
            "  elseif redis.call('GET', key) == 'done' then out[i] = 2 "
            "  else out[i] = 3 end "
            "end return out"
        )
        # Finish only a claim we still hold (compare-and-set / compare-and-delete).
        self._finish = self.redis.register_script(
            "for i, key in ipairs(KEYS) do "
            "  if redis.call('GET', key) == ARGV[1] then "
            "    if ARGV[2] == '1' then redis.call('SET', key, 'done', 'EX', ARGV[3]) "
            "    else redis.call('DEL', key) end "
            "  end "
            "end return 1"
        )

    @staticmethod
    def _key(tenant: str, event_id: str) -> str:
        return f"aforo:evt:{tenant}:{event_id}"

    def try_claim(self, tenant: str, ids: list[str], token: bytes,
                  reads: list[str] = ()) -> ClaimResult:
        """One round trip: claim every free id, and GET each of `reads` (raw Redis keys)."""
        result = ClaimResult()
        if not ids and not reads:
            return result
        outcomes = self._claim(keys=[*(self._key(tenant, e) for e in ids), *reads],
                               args=[token, CLAIM_TTL_MS, len(ids)])
        buckets = {1: result.claimed, 2: result.duplicates, 3: result.pending}
        for event_id, outcome in zip(ids, outcomes, strict=False):
            buckets[outcome].append(event_id)
        result.read = outcomes[len(ids):]
        return result

    def wait(self, tenant: str, ids: list[str], timeout: float = WAIT_FOR_PENDING_S) -> None:
        deadline = time.monotonic() + timeout
        keys = [self._key(tenant, e) for e in ids]
        while keys and time.monotonic() < deadline:
            states = self.redis.mget(keys)
            keys = [k for k, state in zip(keys, states, strict=True)
                    if state is not None and state != DONE]
            if keys:
                time.sleep(0.01)

    def finish(self, tenant: str, ids: Iterable[str], token: bytes, *, ok: bool) -> None:
        keys = [self._key(tenant, e) for e in ids]
        if keys:
            self._finish(keys=keys, args=[token, "1" if ok else "0", DONE_TTL_S])


_claims = None
_claims_lock = threading.Lock()


def claims():
    global _claims
    if _claims is None:
        with _claims_lock:
            if _claims is None:
                _claims = RedisClaims(settings.REDIS_URL) if settings.REDIS_URL else LocalClaims()
    return _claims


def new_claim_token() -> bytes:
    return uuid.uuid4().hex.encode()


def already_in_ledger(tenant: str, ids: list[str]) -> set[str]:
    """The ids among `ids` whose original COST entry is already in the ledger.

    Read from ledger_event_ids, which a materialized view fills from every ledger insert and
    which is ordered by (tenant_id, event_id), so this is a primary-key lookup.
    """
    if not ids:
        return set()
    rows = (LedgerQuery(tenant, Table.EVENT_IDS).expressions("DISTINCT event_id")
            .where_in("event_id", ids).fetch())
    return {row["event_id"] for row in rows}
