"""Server mode with real Celery: two workers and celery-beat against Redis run the scheduled
attribution and alert evaluation; every firing runs on one worker, and the work is done once."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from aforo import eventstore
from billing.models import AttributionRun
from budgets import services as budgets
from budgets.models import Alert
from ingestion.services import events_ingest_dicts
from tests.factories import event, ingest, invoice, revenue_by_event

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def server_store(event_stores):
    if "server" not in event_stores or not settings.REDIS_URL:
        pytest.skip("needs the ClickHouse server and Redis; `make test` starts them")
    eventstore.set_default(event_stores["server"])
    yield event_stores["server"]
    eventstore.set_default(None)


def _every(seconds: int, name: str, task: str) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    interval, _ = IntervalSchedule.objects.get_or_create(every=seconds,
                                                         period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(name=name, defaults={"task": task,
                                                               "interval": interval})


def _succeeded(log: Path, task: str) -> list[str]:
    return re.findall(rf"Task {re.escape(task)}\[([0-9a-f-]+)\] succeeded", log.read_text())


@pytest.mark.django_db(transaction=True)
def test_two_workers_and_beat_run_the_schedule_and_do_the_work_once(server_store, tenant,
                                                                    http_sink, tmp_path):
    # Attribution has work to do: six events and an invoice line not yet attributed.
    ingest(tenant, [event(f"e{i}") for i in range(6)])
    invoice(tenant, lines=[("l1", "prod_x", "10.00", "EVENTS")])
    attributed_before = AttributionRun.objects.filter(tenant=tenant,
                                                      entries_written__gt=0).count()
    # An alert rule the evaluation fires (once).
    events_ingest_dicts(tenant=tenant, now=NOW, events=[
        {"eventId": "spend", "occurredAt": (NOW - timedelta(minutes=5)).isoformat(),
         "customerId": "cust_a", "productId": "prod_a", "cogsUsd": "50"}])
    budgets.alert_rule_create(tenant=tenant, name="Spend", metric="COST", comparison="GT",
                              threshold=Decimal("1"), window="1h", channel="SLACK",
                              destination=http_sink.url)
    # The schedule, as beat reads it from the database: both jobs every 2 seconds.
    _every(2, "test: nightly attribution", "billing.attribute_revenue_all")
    _every(2, "test: alert evaluation", "budgets.evaluate_alerts")

    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/"
                                         f"{db['NAME']}",
           "CLICKHOUSE_URL": settings.CLICKHOUSE_URL, "REDIS_URL": settings.REDIS_URL,
           "CELERY_TASK_ALWAYS_EAGER": "false", "AFORO_IN_PROCESS_SCHEDULE": "false",
           # The sink's loopback address, as the http_sink fixture allows it in this process.
           "AFORO_ALLOW_HTTP_WEBHOOKS": "true", "AFORO_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}
    celery = [sys.executable, "-m", "celery", "-A", "aforo"]
    logs = [tmp_path / "worker1.log", tmp_path / "worker2.log", tmp_path / "beat.log"]
    commands = [
        [*celery, "worker", "--pool", "solo", "-n", "w1@%h", "--loglevel", "info",
         "--without-gossip", "--without-mingle", "-f", str(logs[0])],
        [*celery, "worker", "--pool", "solo", "-n", "w2@%h", "--loglevel", "info",
         "--without-gossip", "--without-mingle", "-f", str(logs[1])],
        [*celery, "beat", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
         "--max-interval", "1", "--loglevel", "info", "-f", str(logs[2]),
         "--schedule", str(tmp_path / "beat-schedule")],
    ]
    processes = [subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT) for c in commands]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = {task: sum(len(_succeeded(log, task)) for log in logs[:2] if log.exists())
                    for task in ("billing.attribute_revenue_all", "budgets.evaluate_alerts")}
            if min(done.values()) >= 3:
                break
            assert all(p.poll() is None for p in processes), "a Celery process exited"
            time.sleep(1)
        else:
            raise AssertionError(f"the schedule did not run three times: {done}")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    # Every firing ran on exactly one worker.
    for task in ("billing.attribute_revenue_all", "budgets.evaluate_alerts"):
        ids = [i for log in logs[:2] for i in _succeeded(log, task)]
        assert len(ids) == len(set(ids)) >= 3
    # Attribution: every event got its share once, the total is the line's, and of all the
    # runs only the first one that had work wrote entries.
    got = revenue_by_event(tenant)
    assert len(got) == 6 and sum(got.values()) == Decimal("10.00")
    nightly = AttributionRun.objects.filter(tenant=tenant, trigger="NIGHTLY")
    assert nightly.count() >= 3
    writers = AttributionRun.objects.filter(tenant=tenant, entries_written__gt=0).count()
    assert writers - attributed_before <= 1 and writers == 1
    # The alert opened once and was delivered once, however often it was evaluated.
    assert Alert.objects.filter(tenant=tenant).count() == 1
    assert len(http_sink.requests) == 1
