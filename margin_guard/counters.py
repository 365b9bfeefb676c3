"""Durable hourly counts of the decisions the guard answered with a lever (BLOCKED,
RATE_LIMITED, DOWNGRADED). The decision path only adds to an in-process counter (no database,
no cache); a background thread writes the counts to GuardDecisionCount every second, adding to
the hour's row, so several processes sum and a restart loses at most that second."""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timezone

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F

log = logging.getLogger(__name__)
FLUSH_EVERY_S = 1.0

# (tenant slug, hour, customer, product, feature, kind)
Key = tuple[str, datetime, str, str, str, str]
_pending: Counter[Key] = Counter()
_lock = threading.Lock()
_flusher: list[threading.Thread] = []


_this_hour: list = [float("-inf"), None]  # (its first second, its datetime)


def _hour_now() -> datetime:
    now = time.time()
    start = now - now % 3600
    hour = datetime.fromtimestamp(start, timezone.utc)
    _this_hour[:] = [start, hour]
    return hour


def decision_count(tenant_slug: str, customer_id: str, product_id: str, feature: str,
                   kind: str, *, at: datetime | None = None) -> None:
    """Count one decision (on the request path: a dictionary update)."""
    if at is None:
        hour = _this_hour[1]
        if not 0 <= time.time() - _this_hour[0] < 3600:  # another hour (once an hour)
            hour = _hour_now()
    else:
        hour = at.replace(minute=0, second=0, microsecond=0)
    with _lock:
        _pending[(tenant_slug, hour, customer_id, product_id, feature, kind)] += 1
        if not _flusher and settings.AFORO_GUARD_COUNTS_FLUSH_THREAD:
            thread = threading.Thread(target=_flush_forever, name="aforo-guard-counts",
                                      daemon=True)
            _flusher.append(thread)
            thread.start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_EVERY_S)
        if not _pending or not settings.AFORO_GUARD_COUNTS_FLUSH_THREAD:
            continue
        try:
            decision_counts_flush()
            close_old_connections()
        except Exception:  # the counts stay pending and go with the next flush
            log.warning("guard decision counts not written yet", exc_info=True)


def decision_counts_flush() -> int:
    """Write this process's pending counts; returns how many decisions were written."""
    from margin_guard.models import GuardDecisionCount

    with _lock:
        counts = dict(_pending)
        _pending.clear()
    written = 0
    try:
        from aforo.models import Tenant

        # a tenant deleted since its calls were counted takes its counts with it
        tenant_ids = dict(Tenant.objects.filter(slug__in={key[0] for key in counts})
                          .values_list("slug", "pk"))
        for key, n in counts.items():
            slug, hour, customer_id, product_id, feature, kind = key
            counts[key] = 0
            if slug not in tenant_ids:
                continue
            scope = dict(tenant_id=tenant_ids[slug], hour=hour, customer_id=customer_id,
                         product_id=product_id, feature=feature, kind=kind)
            counts[key] = n  # pending again unless the write below commits
            # One autocommitted statement at a time: no transaction holds the counts table and
            # the tenant row together (a TRUNCATE, or a migration, never waits on a cycle).
            if not GuardDecisionCount.objects.filter(**scope).update(count=F("count") + n):
                try:
                    with transaction.atomic():  # a savepoint when a caller's transaction runs
                        GuardDecisionCount.objects.create(**scope, count=n)
                except IntegrityError:  # another process created the hour's row
                    GuardDecisionCount.objects.filter(**scope).update(count=F("count") + n)
            counts[key] = 0
            written += n
    finally:
        with _lock:  # whatever was not written goes back
            for key, n in counts.items():
                if n:
                    _pending[key] += n
    return written
