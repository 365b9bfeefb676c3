"""The read side's read models (event-store migration 0010) are caches of the ledger: after any
mix of ingests, cost corrections and attributions (REVENUE and SETTLE entries), each holds
exactly what the raw ledger says, and the pages served from it equal the pages the raw ledger
gives, on both event-store backends."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo import eventstore
from aforo.tenancy import tenant_create
from cogs import queries
from tests.factories import cost_correction_entry, ingest, ledger_amounts, send_batch

pytestmark = pytest.mark.django_db
FIRST, LAST = date(2026, 4, 1), date(2026, 4, 3)
CUSTOMERS = ["cust_1", "cust_2", "cust_3", ""]
PRODUCTS = ["prod_a", "prod_b"]
PROVIDERS = ["Anthropic", "OpenAI", ""]
money = ledger_amounts

batches = st.lists(st.lists(st.fixed_dictionaries({
    # Days just outside the period check its edges; a few shared seconds make ties.
    "day": st.integers(min_value=-1, max_value=3),
    "second": st.one_of(st.sampled_from([0, 43_200, 86_399]), st.integers(0, 86_399)),
    "customer": st.sampled_from(CUSTOMERS),
    "product": st.sampled_from(PRODUCTS),
    "provider": st.sampled_from(PROVIDERS),
    "cost": money,
    "correction": st.one_of(st.none(), money),
    "attributed": st.one_of(st.none(), money),
}), max_size=12), min_size=1, max_size=3)


def _customer_events(tenant) -> list[tuple]:
    return sorted(tuple(row.values()) for row in eventstore.tenant_query(
        tenant.slug,
        "SELECT DISTINCT customer_id, occurred_at, event_id, product_id, provider "
        "FROM ledger_customer_events WHERE tenant_id = %(tenant_id)s", {}))


def _ledger_events(tenant) -> list[tuple]:
    return sorted(tuple(row.values()) for row in eventstore.tenant_query(
        tenant.slug,
        "SELECT customer_id, occurred_at, event_id, product_id, provider FROM ledger "
        "WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' AND entry_kind = 'ORIGINAL'",
        {}))


def _pages(tenant, period, filters, *, use_rollups: bool) -> tuple[list, int]:
    rows, offset = [], 0
    while True:
        page, total = queries.transactions_page(tenant, period, filters, offset=offset,
                                                limit=3, use_rollups=use_rollups)
        rows += page
        offset += 3
        if offset >= total:
            return rows, total


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(generated=batches)
def test_customer_events_equal_the_ledger_and_serve_the_same_pages(store, generated):
    tenant = tenant_create(slug=f"rm-{uuid.uuid4().hex[:12]}", name="Read models")
    n = 0
    for batch in generated:  # each batch its own ingest, as producers send them
        events, corrections, attributed = [], [], []
        for spec in batch:
            at = datetime.combine(FIRST + timedelta(days=spec["day"]), datetime.min.time(),
                                  tzinfo=timezone.utc) + timedelta(seconds=spec["second"])
            event = {"eventId": f"evt_{n}", "occurredAt": at, "customerId": spec["customer"],
                     "productId": spec["product"], "provider": spec["provider"],
                     "model": "m" if spec["provider"] else "", "cogsUsd": spec["cost"]}
            n += 1
            events.append(event)
            if spec["correction"] is not None:
                corrections.append(cost_correction_entry(
                    tenant, event, unclassified_cogs_usd=spec["correction"]))
            if spec["attributed"] is not None:
                attributed.append((event, spec["attributed"]))
        send_batch(tenant, events, corrections, attributed)

    assert _customer_events(tenant) == _ledger_events(tenant)

    periods = [queries.Period(first=FIRST, last=LAST),
               queries.Period(first=FIRST, last=LAST, time_zone="America/New_York")]
    for period in periods:
        for customer in ("cust_1", ""):
            for extra in ({}, {"product_id": "prod_a"}, {"provider": "OpenAI"}):
                filters = queries.TransactionFilters(customer_id=customer, **extra)
                served, total = _pages(tenant, period, filters, use_rollups=True)
                raw, raw_total = _pages(tenant, period, filters, use_rollups=False)
                assert total == raw_total == len(served)
                assert served == raw, (period, filters)


def test_the_migration_copy_run_during_ingest_changes_no_page(store):
    """0010 copies the ledger after its view exists, so an event written in between is held
    twice; reads count and list distinct events, so the pages and counts stay the ledger's."""
    from importlib import import_module

    from aforo.eventstore.migrate import topology_for

    tenant = tenant_create(slug=f"rm-{uuid.uuid4().hex[:12]}", name="Read models")
    at = datetime(2026, 4, 2, 12, tzinfo=timezone.utc)
    ingest(tenant, [{"eventId": f"evt_{n}", "occurredAt": at + timedelta(minutes=n % 7),
                     "customerId": f"cust_{n % 2}", "productId": PRODUCTS[n % 2],
                     "cogsUsd": "0.01"} for n in range(12)])
    period = queries.Period(first=FIRST, last=LAST)
    filters = queries.TransactionFilters(customer_id="cust_1")
    before = _pages(tenant, period, filters, use_rollups=True)
    copy = next(sql for sql in import_module("aforo.eventstore.migrations.0010_read_side")
                .statements(topology_for(eventstore.get_store())) if sql.startswith("INSERT"))
    # the migration's own copy, of this tenant only (the test store is shared)
    eventstore.command(copy + " AND tenant_id = %(tenant)s", {"tenant": tenant.slug})
    held = eventstore.tenant_query(
        tenant.slug, "SELECT count() AS n FROM ledger_customer_events "
        "WHERE tenant_id = %(tenant_id)s", {})[0]["n"]
    assert held in (12, 24)  # twice until a merge folds the copies
    assert _customer_events(tenant) == _ledger_events(tenant)
    assert _pages(tenant, period, filters, use_rollups=True) == before
    assert before == _pages(tenant, period, filters, use_rollups=False)
    assert before[1] == 6
