"""The in-process schedule runs due jobs; the demo seed writes a real tenant's worth of data."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from celery import shared_task

from aforo import eventstore
from aforo.demo import (
    demo_event_count,
    demo_guard,
    demo_seed,
    demo_settle,
    demo_tenant_ensure,
)
from aforo.models import Customer, Product
from aforo.schedule import run_due

pytestmark = pytest.mark.django_db
RUNS: list[int] = []


@shared_task(name="tests.record_run")
def record_run(value: int) -> None:
    RUNS.append(value)


def test_every_scheduled_task_is_registered_in_a_fresh_web_process():
    """The embedded scheduler runs in a process where no worker imported the tasks modules
    (`make demo`'s live traffic once failed with NotRegistered: aforo.demo_traffic)."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import django, json; django.setup()\n"
        "from aforo.schedule import beat_app\n"
        "app = beat_app()\n"
        "print(json.dumps(sorted(e['task'] for e in app.conf.beat_schedule.values()"
        " if e['task'] not in app.tasks)))\n")
    env = {**os.environ, "AFORO_DEMO_TRAFFIC": "true", "DJANGO_SETTINGS_MODULE": "aforo.settings"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_due_jobs_run_and_others_wait():
    RUNS.clear()
    entries = {
        "every-tick": {"task": "tests.record_run", "schedule": timedelta(seconds=0), "args": (1,)},
        "hourly": {"task": "tests.record_run", "schedule": timedelta(hours=1), "args": (2,)},
    }
    last_run: dict = {}
    assert run_due(entries, last_run) == ["every-tick"]
    assert run_due(entries, last_run) == ["every-tick"]
    assert RUNS == [1, 1]


def test_demo_seed_covers_tiers_products_providers_and_unsplit_costs(store):
    slug = f"demo-{uuid.uuid4().hex[:8]}"
    creds = demo_tenant_ensure(slug)
    assert creds.token.raw.startswith("afo_")
    now = datetime.now(timezone.utc).replace(microsecond=0)
    written = demo_seed(creds.tenant, events=3000, batch=1000, now=now)
    demo_settle(creds.tenant, start=now - timedelta(days=90), now=now)
    # the dry-run guard evaluates every customer once (levels need more volume than this seed)
    assert demo_guard(creds.tenant, now=now) == 60
    from margin_guard.models import GuardState

    assert set(GuardState.objects.filter(tenant=creds.tenant).values_list("mode", flat=True)) \
        == {"DRY_RUN"}
    assert written == 3000 == demo_event_count(creds.tenant)
    assert Customer.objects.filter(tenant=creds.tenant).values("tier").distinct().count() == 3
    assert Product.objects.filter(tenant=creds.tenant).count() >= 6
    stats = eventstore.tenant_query(
        creds.tenant.slug,
        "SELECT uniqExact(provider) AS providers, uniqExact(model) AS models, "
        "countIf(unclassified_cogs_usd > 0) AS unsplit, "
        "min(occurred_at) AS first, max(occurred_at) AS last "
        "FROM ledger WHERE tenant_id = %(tenant_id)s",
    )[0]
    assert stats["providers"] == 4 and stats["models"] >= 10
    assert stats["unsplit"] > 0
    assert stats["last"] - stats["first"] > timedelta(days=80)
    sources = eventstore.tenant_query(
        creds.tenant.slug,
        "SELECT cost_source, sum(event_count) AS events, sum(unpriced) AS unpriced "
        "FROM ledger WHERE tenant_id = %(tenant_id)s GROUP BY cost_source ORDER BY cost_source",
    )
    # most events are priced from the demo rate card, some carry their own cost, none unpriced
    by_source = {r["cost_source"]: r for r in sources}
    assert by_source["RATE_CARD"]["events"] > by_source["CARRIED"]["events"] > 0
    assert sum(r["unpriced"] for r in sources) == 0
    # Closed months are invoiced and attributed; legacy customers lose money; the current
    # month is still settling.
    money = eventstore.tenant_query(
        creds.tenant.slug,
        "SELECT customer_id, sum(revenue_usd) AS revenue, sum(ai_cogs_usd + infra_cogs_usd "
        "+ fee_cogs_usd + unclassified_cogs_usd) AS cogs FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND occurred_at < %(month)s GROUP BY customer_id",
        {"month": now.replace(day=1, hour=0, minute=0, second=0)},
    )
    assert sum(r["revenue"] for r in money) > 0
    losers = {r["customer_id"] for r in money if r["revenue"] < r["cogs"]}
    assert losers and len(losers) < len(money) / 2
    # A second setup keeps the tenant and revokes the previous demo token.
    again = demo_tenant_ensure(slug)
    assert again.tenant.pk == creds.tenant.pk
    assert again.tenant.api_tokens.filter(revoked_at__isnull=True).count() == 1
