"""The detectors fire on what they promise and stay quiet on ordinary data, once per signal
however often they run; data enters through the ingestion service, on both backends."""
from __future__ import annotations

import statistics
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from budgets.services import budget_create
from cogs.services import cogs_settings_update
from intelligence.detectors import detectors_run, last_complete_hours, last_complete_week
from intelligence.models import Kind, Signal
from tests.factories import ingest, usage_events

HOUR = timedelta(hours=1)
EVENTS_PER_HOUR = 40


def _now() -> datetime:
    """Twenty minutes into the current hour (detectors judge the hours before it)."""
    return datetime.now(timezone.utc).replace(minute=20, second=0, microsecond=0)


def _signals(tenant, kind=None):
    found = Signal.objects.filter(tenant=tenant)
    return list(found.filter(kind=kind) if kind else found)


def _baseline_tokens(day_back: int) -> int:
    """Input tokens per event on the baseline day `day_back`: 800, 1000 or 1200, cycling."""
    return {1: 1000, 2: 1200, 0: 800}[day_back % 3]


def _hour_of_usage(tenant, customer: str, hour: datetime, tokens: int, tag: str, now):
    ingest(tenant, usage_events(f"{customer}-{tag}", customer=customer, at=hour + timedelta(
        minutes=1), count=EVENTS_PER_HOUR, inputTokens=tokens, outputTokens=0), now=now)


def test_a_planted_five_sigma_hour_fires_one_usage_anomaly(store, tenant):
    now = _now()
    judged = last_complete_hours(now)[-1]
    for customer in ("cust-spiky", "cust-calm"):
        for back in range(1, 15):
            _hour_of_usage(tenant, customer, judged - timedelta(days=back),
                           _baseline_tokens(back), f"d{back}", now)
    totals = [_baseline_tokens(back) * EVENTS_PER_HOUR for back in range(1, 15)]
    mean, sd = statistics.mean(totals), statistics.stdev(totals)
    spike = int((mean + 5 * sd) / EVENTS_PER_HOUR) + 1
    _hour_of_usage(tenant, "cust-spiky", judged, spike, "now", now)
    _hour_of_usage(tenant, "cust-calm", judged, 1000, "now", now)

    new = detectors_run(tenant=tenant, now=now)

    anomalies = [s for s in new if s.kind == Kind.USAGE_ANOMALY]
    assert len(anomalies) == 1, [s.title for s in new]
    signal = anomalies[0]
    assert (signal.customer_id, signal.unit, signal.product_id) == ("cust-spiky",
                                                                    "INPUT_TOKENS", "")
    assert signal.window_start == judged and signal.window_end == judged + HOUR
    assert signal.value == spike * EVENTS_PER_HOUR
    assert signal.baseline == (Decimal(sum(totals)) / 14).quantize(Decimal("1e-9"))
    assert Decimal("4.9") <= signal.deviation <= Decimal("5.2")
    assert signal.severity == "CRITICAL" and signal.state == "OPEN"
    # The samples are the hour's own events, and the latency runs from the last of them.
    assert len(signal.sample_event_ids) == 5
    assert all(e.startswith("cust-spiky-now-") for e in signal.sample_event_ids)
    assert signal.last_event_at == judged + timedelta(minutes=1, seconds=EVENTS_PER_HOUR - 1)
    assert signal.detection_latency_seconds == int((now - signal.last_event_at).total_seconds())

    # Again, and again later in the next hour: the same hour is never stored twice.
    assert detectors_run(tenant=tenant, now=now) == []
    assert detectors_run(tenant=tenant, now=now + timedelta(minutes=30)) == []
    assert len(_signals(tenant, Kind.USAGE_ANOMALY)) == 1


def test_an_ordinary_week_fires_nothing(store, tenant):
    """Three weeks where every hour is within 1σ of its baseline: no detector fires in any
    hour of the last week (each run judges two hours, so every other hour runs)."""
    now = _now()
    start = last_complete_hours(now)[-1] - timedelta(days=21) + HOUR
    events, hour = [], start
    n = 0
    while hour < now:
        day = (hour - start).days
        # ±100 tokens a day in the baseline weeks, ±50 in the last: within 1σ of every baseline
        swing = 100 if day < 14 else 50
        tokens = 1000 + swing * ((day % 3) - 1)
        events += usage_events(f"cust-a-{n}", customer="cust-a", at=hour, count=6,
                               spacing_s=60, inputTokens=tokens, cogsUsd="0.01")
        hour += HOUR
        n += 1
    for batch in range(0, len(events), 1000):
        ingest(tenant, events[batch:batch + 1000], now=now)
    run_at = now - timedelta(days=7)
    while run_at <= now:
        detectors_run(tenant=tenant, now=run_at,
                      kinds=(Kind.USAGE_ANOMALY, Kind.COST_SPIKE, Kind.CHURN_RISK))
        run_at += 2 * HOUR
    assert _signals(tenant) == []


def _week_of(tenant, customer: str, start: datetime, count: int, now, tag: str):
    ingest(tenant, usage_events(f"{customer}-{tag}", customer=customer,
                                at=start + timedelta(hours=10), count=count, spacing_s=600),
           now=now)


def test_a_sixty_percent_weekly_drop_fires_churn_risk_once(store, tenant):
    cogs_settings_update(tenant=tenant, time_zone="Asia/Tokyo")
    now = _now()
    start, end = last_complete_week(now, "Asia/Tokyo")
    assert start.astimezone(timezone(timedelta(hours=9))).weekday() == 0  # a Monday, Tokyo
    before = start - timedelta(days=7)
    _week_of(tenant, "cust-leaving", before, 200, now, "w1")
    _week_of(tenant, "cust-leaving", start, 80, now, "w2")   # down 60%
    _week_of(tenant, "cust-steady", before, 200, now, "w1")
    _week_of(tenant, "cust-steady", start, 190, now, "w2")   # down 5%
    _week_of(tenant, "cust-small", before, 40, now, "w1")    # below the minimum volume
    _week_of(tenant, "cust-small", start, 2, now, "w2")

    for _run in range(2):
        detectors_run(tenant=tenant, now=now, kinds=(Kind.CHURN_RISK,))

    churn = _signals(tenant, Kind.CHURN_RISK)
    assert [(s.customer_id, s.value, s.baseline, s.deviation) for s in churn] == [
        ("cust-leaving", 80, 200, Decimal("-60.0000"))]
    assert (churn[0].window_start, churn[0].window_end) == (start, end)
    assert churn[0].sample_event_ids[0].startswith("cust-leaving-w2-")


def test_a_budget_on_pace_for_130_percent_fires_pacing_once_per_threshold(store, tenant):
    from aforo.periods import period_bounds

    last_month = datetime.now(timezone.utc).replace(day=1) - timedelta(days=10)
    start, end = period_bounds("MONTHLY", last_month)
    now = start + (end - start) / 2
    budget = budget_create(tenant=tenant, name="Inference", period="MONTHLY",
                           cap_usd=Decimal(100), customer_id="", product_id="")
    # $65 spent half way through the month: on pace for $130.
    ingest(tenant, usage_events("spend", customer="cust-1", at=start + timedelta(days=1),
                                count=13, spacing_s=3600, cogsUsd="5"), now=now)

    for _run in range(2):
        detectors_run(tenant=tenant, now=now, kinds=(Kind.QUOTA_PACING,))
    detectors_run(tenant=tenant, now=now + timedelta(hours=1), kinds=(Kind.QUOTA_PACING,))

    pacing = sorted(_signals(tenant, Kind.QUOTA_PACING), key=lambda s: s.threshold)
    assert [(s.threshold, s.severity) for s in pacing] == [
        (Decimal(80), "INFO"), (Decimal(100), "WARNING"), (Decimal(120), "CRITICAL")]
    first = pacing[0]
    assert first.subject == f"budget:{budget.pk}" and first.unit == "COGS_USD"
    assert first.value == Decimal(130) and first.baseline == Decimal(100)
    assert (first.window_start, first.window_end) == (start, end)
    assert len(first.sample_event_ids) == 5


concurrent = pytest.mark.django_db(transaction=True)


@concurrent
def test_concurrent_detector_runs_store_each_signal_once(store, tenant):
    """Two runs at once (threads here; the server-mode test below uses two processes)."""
    import threading

    from django.db import connection

    now = _plant_spike(tenant)
    barrier = threading.Barrier(4)

    def run():
        barrier.wait()
        try:
            detectors_run(tenant=tenant, now=now, kinds=(Kind.USAGE_ANOMALY,))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_signals(tenant, Kind.USAGE_ANOMALY)) == 1


def _plant_spike(tenant) -> datetime:
    now = _now()
    judged = last_complete_hours(now)[-1]
    for back in range(1, 15):
        _hour_of_usage(tenant, "cust-x", judged - timedelta(days=back),
                       _baseline_tokens(back), f"d{back}", now)
    _hour_of_usage(tenant, "cust-x", judged, 5000, "now", now)
    return now


@concurrent
def test_two_processes_running_the_detectors_at_once_store_one_signal(store, tenant):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings
    from django.db import connection

    if store.__class__.__name__ != "ServerStore":
        pytest.skip("the embedded store belongs to one process (threads test it above)")
    now = _plant_spike(tenant)
    db = connection.settings_dict
    url = (f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
           if connection.vendor == "postgresql" else f"sqlite:///{db['NAME']}")
    env = {**os.environ, "DATABASE_URL": url, "CLICKHOUSE_URL": settings.CLICKHOUSE_URL}
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "manage.py", "detect_signals", "--tenant", tenant.slug,
               "--now", now.isoformat(), "--kind", "USAGE_ANOMALY"]
    runs = [subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert len(_signals(tenant, Kind.USAGE_ANOMALY)) == 1
    assert sorted(out.strip().splitlines()[-1] for out, _err in outputs) == [
        "0 new signals", "1 new signals"]
