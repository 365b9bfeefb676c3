"""The decision mirror forgets what no decision read for MIRROR_KEEP_S: a refresh round re-reads
only the keys in use, and a forgotten key's next decision reads Redis again, to the same verdict."""
from __future__ import annotations

import time

import pytest

from aforo.refresher import refresh_round
from aforo.shared_cache import shared_cache
from entitlements.state import state_key
from margin_guard import decision
from margin_guard.models import GuardPolicy, GuardState


class Clock:
    """decision's `time`, its monotonic clock moved on at will (wall time untouched)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead

    @staticmethod
    def time() -> float:
        return time.time()


@pytest.fixture
def clock(monkeypatch):
    decision.mirror_forget()
    moved = Clock()
    monkeypatch.setattr(decision, "time", moved)
    yield moved
    decision.mirror_forget()


@pytest.fixture
def reads(monkeypatch):
    """The keys each shared-cache get_many asked Redis for (the real client answers)."""
    cache = shared_cache()
    asked: list[str] = []
    real = cache.get_many

    def counted(keys, *args, **kwargs):
        asked.extend(keys)
        return real(keys, *args, **kwargs)

    monkeypatch.setattr(cache, "get_many", counted)
    return asked


@pytest.fixture
def two_throttled(throttled):
    """c1 (the throttled fixture's) and c2, both throttled by the tenant's policy."""
    policy = GuardPolicy.objects.get(tenant=throttled)
    state = GuardState.objects.create(tenant=throttled, customer_id="c2", level=2,
                                      mode="ENFORCE", policy=policy)
    decision.profile_store(state, policy)
    return throttled


def _keys(tenant_slug: str, customer_id: str) -> set[str]:
    prefix = f"aforo:guard:{tenant_slug}:{customer_id}:"
    return {prefix + "p1", prefix, state_key(tenant_slug, customer_id)}


def _verdict(tenant_slug: str, customer_id: str) -> tuple:
    d = decision.decide(tenant_slug, customer_id=customer_id, product_id="p1", model="gpt-4o")
    return d.decision, d.level, d.model, d.downgrade_to, d.reason_code


def test_a_key_unused_past_the_keep_time_is_dropped_and_no_longer_read(
        two_throttled, clock, reads):
    slug = two_throttled.slug
    decision.mirror_forget()  # nothing held from publishing: what is held is what was read
    before = {c: _verdict(slug, c) for c in ("c1", "c2")}
    assert before["c1"] == ("THROTTLE", 2, "gpt-4o-mini", "gpt-4o-mini", "MARGIN_FLOOR")
    refresh_round(tokens=False)
    assert (_keys(slug, "c1") | _keys(slug, "c2")) <= set(decision._mirror)

    clock.ahead += decision.MIRROR_KEEP_S - 60
    assert _verdict(slug, "c2") == before["c2"]  # c2 in use, c1 not
    clock.ahead += 120  # c1 unused for KEEP + 60 s, c2 for 120 s
    reads.clear()
    refresh_round(tokens=False)
    assert not _keys(slug, "c1") & set(decision._mirror)
    assert not _keys(slug, "c1") & set(reads)
    assert _keys(slug, "c2") <= set(decision._mirror)
    assert set(reads) == _keys(slug, "c2")  # refreshed: re-read from Redis

    reads.clear()
    refresh_round(tokens=False)
    assert set(reads) == _keys(slug, "c2")  # the dropped key stays unread round after round


def test_a_key_used_within_the_keep_time_stays_and_is_refreshed(two_throttled, clock, reads):
    slug = two_throttled.slug
    decision.mirror_forget()
    _verdict(slug, "c1")
    for _ in range(3):  # used every KEEP/2: never dropped, however long it runs
        clock.ahead += decision.MIRROR_KEEP_S / 2
        decision.decide_held(slug, "c1", "p1", "gpt-4o", "") or _verdict(slug, "c1")
        reads.clear()
        refresh_round(tokens=False)
        assert set(reads) == _keys(slug, "c1")
    # the refresh carries a change published elsewhere (into Redis only) to the held key
    key = f"aforo:guard:{slug}:c1:"
    shared_cache().set(key, {**shared_cache().get(key), "mode": "DRY_RUN"}, 3600)
    refresh_round(tokens=False)
    held = decision.decide_held(slug, "c1", "p1", "gpt-4o", "")
    assert (held.decision, held.would) == ("ALLOW", "THROTTLE")


def test_a_key_published_here_but_never_read_is_dropped_after_the_keep_time(
        two_throttled, clock, reads):
    slug = two_throttled.slug
    decision.profile_store(GuardState.objects.get(tenant=two_throttled, customer_id="c2"),
                           GuardPolicy.objects.get(tenant=two_throttled))
    key = f"aforo:guard:{slug}:c2:"
    assert set(decision._mirror) == {key}  # published into this process's mirror
    refresh_round(tokens=False)
    assert reads == [key]  # kept a while from the first round seeing it
    clock.ahead += decision.MIRROR_KEEP_S + 1
    reads.clear()
    refresh_round(tokens=False)
    assert not reads and not decision._mirror


def test_a_dropped_key_is_answered_the_same_from_redis(two_throttled, clock, reads):
    slug = two_throttled.slug
    decision.mirror_forget()
    before = _verdict(slug, "c1")
    refresh_round(tokens=False)
    assert decision.decide_held(slug, "c1", "p1", "gpt-4o", "") is not None
    clock.ahead += decision.MIRROR_KEEP_S + 1
    refresh_round(tokens=False)
    assert not decision._mirror
    # the door's no-I/O way does not answer a key it no longer holds (never ALLOW for nothing)
    assert decision.decide_held(slug, "c1", "p1", "gpt-4o", "") is None
    reads.clear()
    assert _verdict(slug, "c1") == before == (
        "THROTTLE", 2, "gpt-4o-mini", "gpt-4o-mini", "MARGIN_FLOOR")
    assert _keys(slug, "c1") <= set(reads)  # read from Redis
    held = decision.decide_held(slug, "c1", "p1", "gpt-4o", "")  # and held again
    assert (held.decision, held.model) == ("THROTTLE", "gpt-4o-mini")
