"""Exactly-once intake: an eventId counts once per tenant, however often and concurrently sent.

Two layers. Claims (Redis `SET NX` across processes in server mode; a lock-guarded dict in the
embedded mode, which is one process by construction) stop two requests from inserting the same
event at once. The ledger itself is the durable truth: before inserting, the claimed ids are
looked up there, so an event written before a Redis restart is still a duplicate. A claim is
marked done only after its insert succeeded, and released if the insert failed, so a failed
event is never counted and its retry lands once.

On a cluster an insert can fail without saying whether it wrote (InsertOutcomeUnknown): its
claims are then kept as `unknown:<when>` for days instead of released. A retry within
SETTLE_AFTER_S of the failure answers 503 in_flight; a later one takes the claims over and asks
every replica which events are in the ledger (`unknown_resolve`): those are duplicates (their
read models filled if the write skipped them), the others are written by the retry.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from aforo import eventstore
from aforo.errors import unavailable_part
from aforo.eventstore.errors import FeedStop
from aforo.eventstore.unknown_writes import SETTLE_AFTER_S, unknown_writes_resolve
from aforo.ledger.query import LedgerQuery, Table

log = logging.getLogger(__name__)

CLAIM_TTL_MS = 60_000
DONE_TTL_S = 300  # a fast path for quick retries; the ledger is the lasting truth
WAIT_FOR_PENDING_S = 10.0
DONE = b"done"
# The claims of a write whose outcome is unknown: b"unknown:<the failure's time in ms>", then
# "|" and its FeedStop when the error said where a shard stopped feeding the views.
UNKNOWN = b"unknown:"
UNKNOWN_TTL_S = 7 * 24 * 3600  # how long a retry of such a write is still settled exactly


def _unknown_since_ms(state) -> int | None:
    if state is None or not state.startswith(UNKNOWN):
        return None
    return int(state[len(UNKNOWN):].split(b"|", 1)[0])


def unknown_state(since_ms: int, stop: FeedStop | None) -> bytes:
    return UNKNOWN + str(since_ms).encode() + (b"|" + stop.encode().encode() if stop else b"")


def unknown_stop(state: bytes) -> FeedStop | None:
    """The FeedStop an unknown-outcome claim recorded, if any."""
    _since, _bar, stop = state[len(UNKNOWN):].partition(b"|")
    return FeedStop.decode(stop.decode()) if stop else None


def _settle_cutoff_ms() -> int:
    """Unknown-outcome claims from before this moment (ms) may be settled now."""
    return int((time.time() - SETTLE_AFTER_S) * 1000)


class ClaimsHeldElsewhere(Exception):
    """Events of a batch stayed claimed by another request that neither wrote nor released
    them in time (it may have died, or lost Redis before it could release): they are not
    known to be written, so the batch must be retried, never counted as duplicates."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} events of this batch are being written by another request; "
                         "the others were handled. Retry the batch shortly.")
        self.count = count

    retry_after = 1  # seconds


class OutcomeUnknown(ClaimsHeldElsewhere):
    """Events of a batch belong to an earlier write whose outcome the event store has not
    confirmed yet (a cluster replica failed during it): the batch must be retried later, with
    the same event ids, and then each lands once."""

    def __init__(self, count: int) -> None:
        Exception.__init__(
            self, f"{count} events of this batch belong to an earlier write the event store "
                  "has not confirmed yet; the others were handled. Retry the batch with the "
                  "same event ids in a few seconds: each event lands exactly once.")
        self.count = count

    retry_after = 5  # seconds


@dataclass
class ClaimResult:
    """Of the ids asked for: ours to insert, already counted, and in flight in another request."""

    claimed: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # taken over from an unknown-outcome write
    stops: dict[str, FeedStop] = field(default_factory=dict)  # of those, where feeding stopped
    unsettled: list[str] = field(default_factory=list)  # of such a write too recent to settle
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
                elif (since := _unknown_since_ms(state)) is None:
                    result.pending.append(event_id)
                elif since <= _settle_cutoff_ms():
                    self._state[(tenant, event_id)] = token
                    result.unknown.append(event_id)
                    if (stop := unknown_stop(state)) is not None:
                        result.stops[event_id] = stop
                else:
                    result.unsettled.append(event_id)
        return result

    def wait(self, tenant: str, ids: list[str], timeout: float = WAIT_FOR_PENDING_S) -> None:
        """Until none of `ids` is in flight (each is done or released), or the timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(_in_flight(self._state.get((tenant, e))) for e in ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._cond.wait(timeout=min(left, 0.05))

    def finish(self, tenant: str, ids: Iterable[str], token: bytes, *, ok: bool) -> None:
        self._settle(tenant, ids, token, DONE if ok else None)

    def keep_unknown(self, tenant: str, ids: Iterable[str], token: bytes, *,
                     since_ms: int, stop: FeedStop | None = None) -> None:
        self._settle(tenant, ids, token, unknown_state(since_ms, stop))

    def _settle(self, tenant: str, ids: Iterable[str], token: bytes, state: bytes | None) -> None:
        with self._cond:
            for event_id in ids:
                key = (tenant, event_id)
                if self._state.get(key) == token:
                    if state is None:
                        del self._state[key]
                    else:
                        self._state[key] = state
            self._cond.notify_all()


class RedisClaims:
    """Claims shared by every process: `SET key token NX PX` per event, pipelined per batch."""

    def __init__(self, url: str) -> None:
        import redis

        # A Redis that stops answering fails the request (503) within seconds, never hangs it.
        self.redis = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        # One round trip per batch: claim every free key, and say of the others whether they
        # are done (1 claimed, 2 done, 3 in flight elsewhere); the claims of a write whose
        # outcome is unknown are taken over once ARGV[4] (ms) is past their time (their
        # state is returned, which may say where the write stopped), else left (5).
        # The first ARGV[3] keys are claimed; the rest are only read (GET, '' when absent),
        # so the caller's other reads (the rate card's and plans' versions) share the trip.
        self.url = url
        self._claim = self.redis.register_script(
            "local out = {} local n = tonumber(ARGV[3]) "
            "for i, key in ipairs(KEYS) do "
            "  if i > n then out[i] = redis.call('GET', key) or '' "
            "  elseif redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then out[i] = 1 "
            "  else local v = redis.call('GET', key) "
            "    if v == 'done' then out[i] = 2 "
            "    elseif v and string.sub(v, 1, 8) == 'unknown:' then "
            "      if tonumber(string.match(v, '^unknown:(%d+)')) <= tonumber(ARGV[4]) then "
            "        redis.call('SET', key, ARGV[1], 'PX', ARGV[2]) out[i] = v "
            "      else out[i] = 5 end "
            "    else out[i] = 3 end end "
            "end return out"
        )
        # Finish only a claim we still hold (compare-and-set / compare-and-delete): set it to
        # ARGV[2] for ARGV[3] s, or delete it when ARGV[2] is ''.
        self._finish = self.redis.register_script(
            "for i, key in ipairs(KEYS) do "
            "  if redis.call('GET', key) == ARGV[1] then "
            "    if ARGV[2] ~= '' then redis.call('SET', key, ARGV[2], 'EX', ARGV[3]) "
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
                               args=[token, CLAIM_TTL_MS, len(ids), _settle_cutoff_ms()])
        buckets = {1: result.claimed, 2: result.duplicates, 3: result.pending,
                   5: result.unsettled}
        for event_id, outcome in zip(ids, outcomes, strict=False):
            if isinstance(outcome, bytes):  # an unknown-outcome write's state: taken over
                result.unknown.append(event_id)
                if (stop := unknown_stop(outcome)) is not None:
                    result.stops[event_id] = stop
            else:
                buckets[outcome].append(event_id)
        result.read = outcomes[len(ids):]
        return result

    def wait(self, tenant: str, ids: list[str], timeout: float = WAIT_FOR_PENDING_S) -> None:
        deadline = time.monotonic() + timeout
        keys = [self._key(tenant, e) for e in ids]
        while keys and time.monotonic() < deadline:
            states = self.redis.mget(keys)
            keys = [k for k, state in zip(keys, states, strict=True) if _in_flight(state)]
            if keys:
                time.sleep(0.01)

    def finish(self, tenant: str, ids: Iterable[str], token: bytes, *, ok: bool) -> None:
        self._settle(tenant, ids, token, DONE if ok else b"", DONE_TTL_S)

    def keep_unknown(self, tenant: str, ids: Iterable[str], token: bytes, *,
                     since_ms: int, stop: FeedStop | None = None) -> None:
        self._settle(tenant, ids, token, unknown_state(since_ms, stop), UNKNOWN_TTL_S)

    def _settle(self, tenant: str, ids: Iterable[str], token: bytes, state: bytes,
                ttl_s: int) -> None:
        keys = [self._key(tenant, e) for e in ids]
        if keys:
            self._finish(keys=keys, args=[token, state, ttl_s])


_claims = None
_claims_lock = threading.Lock()


def claims():
    global _claims
    if _claims is None:
        with _claims_lock:
            if _claims is None:
                _claims = RedisClaims(settings.REDIS_URL) if settings.REDIS_URL else LocalClaims()
    return _claims


def _in_flight(state) -> bool:
    """A claim some request holds now (not done, not released, not an unknown outcome)."""
    return state is not None and state != DONE and not state.startswith(UNKNOWN)


def unknown_keep(claims, tenant: str, claimed: list[str], ids: list[str],
                 token: bytes, stop: FeedStop | None = None) -> None:
    """Keep the claims of `ids`, whose write's outcome is unknown, until a retry settles
    them (with where a shard stopped feeding the views, if the error said); release the rest
    of `claimed` (they were not in the write)."""
    try:
        claims.keep_unknown(tenant, ids, token, since_ms=int(time.time() * 1000), stop=stop)
        claims.finish(tenant, claimed, token, ok=False)  # the kept ones are no longer ours
    except Exception as exc:
        if unavailable_part(exc) is None:
            raise
        # Redis is down too: the claims expire (CLAIM_TTL_MS) and a retry after that is
        # deduplicated by the ledger's event ids alone (docs/eventstore.md, the bound).
        log.warning("claims of %d events of an unknown-outcome write not kept: %s", len(ids), exc)


def unknown_resolve(claims, tenant: str, ids: list[str], token: bytes,
                    stops: dict[str, FeedStop] | None = None,
                    ) -> tuple[list[str], list[str], list[str]]:
    """Settle the claims this request took over from a write whose outcome was unknown
    (`stops`: where feeding stopped, by event id): (in the ledger: done; never written: still
    claimed by us, to write; undecided: kept unknown, as a replica did not answer)."""
    store = eventstore.get_store()
    progress = dict(stops or {})  # a repair that fails midway says how far it fed
    try:
        if store.cluster:
            found = unknown_writes_resolve(store, tenant_id=tenant, event_ids=ids,
                                           stops=progress)
            written, absent = found.written, found.absent
            if found.repaired:
                log.warning("fed the read models of %d events an unconfirmed write had "
                            "skipped: %s", len(found.repaired), found.fed)
        else:
            written = already_in_ledger(tenant, ids)
            absent = set(ids) - written
    except Exception as exc:
        by_stop: dict[FeedStop | None, list[str]] = {}
        for event_id in ids:
            by_stop.setdefault(progress.get(event_id), []).append(event_id)
        for stop, some in by_stop.items():  # settled by the next retry
            claims.keep_unknown(tenant, some, token, since_ms=0, stop=stop)
        if unavailable_part(exc) is None:
            raise
        return [], [], ids
    done = [e for e in ids if e in written]
    claims.finish(tenant, done, token, ok=True)
    return done, [e for e in ids if e in absent], []


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
