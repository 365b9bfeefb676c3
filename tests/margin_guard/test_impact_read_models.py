"""The impact report's read models (event-store migrations 0015 by second and 0016 by UTC day)
are caches of the ledger: after any mix of ingests (downgraded calls, tools, models, provisional
revenue or none), cost corrections, allocations and attributions (REVENUE and SETTLE entries),
each holds exactly what the raw ledger says, and the report read from them (whole days from the
daily tables, partial ones from the per-second tables) gives the figures the raw ledger gives
for windows and interventions at any second over several days, on every event-store backend."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo import eventstore
from aforo.ledger.query import MEASURES, Table
from aforo.tenancy import tenant_create
from cogs.expected import scope_margin
from cost_sources.allocations import allocation_create
from ingestion.prices import model_price_create
from margin_guard import impact
from margin_guard.counters import decision_count, decision_counts_flush
from margin_guard.models import GuardAction
from tests.factories import (
    attribute,
    cost_correction_entry,
    cost_source,
    ingest,
    ledger_amounts,
    send_batch,
)

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
SPAN = 3 * 86400  # three UTC days, so windows hold whole days and partial ones
EDGES = [0, 1, 3599, 86399, 86400, 86401, 2 * 86400 - 1, 2 * 86400]  # around midnights
CUSTOMERS = ["cust_1", "cust_2", "cust_3", ""]
MODELS = ["gpt-4o", "gpt-4o-mini", ""]
money = ledger_amounts
instants = st.one_of(st.sampled_from([*EDGES, SPAN]), st.integers(0, SPAN)).map(
    lambda s: T0 + timedelta(seconds=s))

batches = st.lists(st.lists(st.fixed_dictionaries({
    "second": st.one_of(st.sampled_from(EDGES), st.integers(0, SPAN - 1)),
    "customer": st.sampled_from(CUSTOMERS),
    "model": st.sampled_from(MODELS),
    "requested": st.sampled_from(["", "gpt-4o", "gpt-4o-mini"]),
    "tool": st.sampled_from(["", "batch"]),
    "tokens": st.integers(0, 2_000_000),
    "cost": money,
    "revenue": st.one_of(st.none(), money),
    "correction": st.one_of(st.none(), money),
    "attributed": st.one_of(st.none(), money),
}), max_size=10), min_size=1, max_size=3)


def _rows(tenant, sql: str) -> list[tuple]:
    return sorted(tuple(r.values()) for r in eventstore.tenant_query(tenant.slug, sql, {}))


_DOWNGRADED = ("guard_downgraded", "guard_downgraded_days")
_CUSTOMER_CALLS = ("guard_customer_calls", "guard_customer_days")


def _cache_equals_ledger(tenant) -> None:
    """Each read model, summed per key (its second or its UTC day), against the same sums over
    the raw ledger (rows whose sums are all zero dropped on both sides: a summing table drops
    them when it merges)."""
    for table, (raw_time, time) in zip((*_DOWNGRADED, *_CUSTOMER_CALLS), (
            ("occurred_at", "occurred_at"), ("toDate(occurred_at)", "day")) * 2, strict=True):
        if table in _DOWNGRADED:
            keys, measures = "provider, requested_model, model", (
                "events", "tokens_in", "tokens_out", "tokens_cached", "tokens_reasoning",
                "cogs_ai")
            where = ("AND entry_type = 'COST' AND allocation_id = '' AND requested_model != '' "
                     "AND requested_model != model")
        else:  # the daily table holds the COST entries' calls and cost only
            keys, where = "customer_id, tool_name, model", ""
            measures = ("events", "cogs") if table.endswith("_days") else (
                "events", "cogs", "revenue", "revenue_carried", "revenue_rated",
                "events_unsourced", "b_cogs")
        nonzero = " OR ".join(f"{m} != 0" for m in measures)
        cached = _rows(tenant, f"SELECT {time} AS t, {keys}, " + ", ".join(
            f"{MEASURES[m].over(Table(table))} AS {m}" for m in measures)
            + f" FROM {table} WHERE tenant_id = %(tenant_id)s "
              f"GROUP BY t, {keys} HAVING {nonzero}")
        raw = _rows(tenant, f"SELECT {raw_time} AS t, {keys}, " + ", ".join(
            f"{MEASURES[m].raw} AS {m}" for m in measures)
            + f" FROM ledger WHERE tenant_id = %(tenant_id)s {where} "
              f"GROUP BY t, {keys} HAVING {nonzero}")
        assert cached == raw, table


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(generated=batches, window=st.tuples(instants, instants),
       interventions=st.lists(st.tuples(st.sampled_from(CUSTOMERS[:3]), instants),
                              max_size=3),
       allocated=st.booleans())
def test_read_models_equal_the_ledger_and_give_its_report(store, generated, window,
                                                          interventions, allocated):
    tenant = tenant_create(slug=f"gi-{uuid.uuid4().hex[:12]}", name="Impact read models")
    for model, price_in, price_out in (("gpt-4o", "2.5", "10"), ("gpt-4o-mini", "0.15", "0.6")):
        model_price_create(tenant=tenant, provider="OpenAI", model=model,
                           effective_from=T0 - timedelta(days=2),
                           input_per_1m=Decimal(price_in), output_per_1m=Decimal(price_out))
    n = 0
    for batch in generated:  # each batch its own ingest, as producers send them
        events, corrections, attributed = [], [], []
        for spec in batch:
            event = {"eventId": f"evt_{n}", "occurredAt": T0 + timedelta(seconds=spec["second"]),
                     "customerId": spec["customer"], "productId": "prod_chat",
                     "provider": "OpenAI" if spec["model"] else "", "model": spec["model"],
                     "cogsUsd": spec["cost"], "inputTokens": spec["tokens"],
                     "outputTokens": spec["tokens"] // 10}
            if spec["requested"]:
                event["requestedModel"] = spec["requested"]
            if spec["tool"]:
                event["toolName"] = spec["tool"]
            if spec["revenue"] is not None:
                event["revenueUsd"] = spec["revenue"]
            n += 1
            events.append(event)
            if spec["correction"] is not None:  # a correction of the call, as it was asked
                corrections.append({**cost_correction_entry(
                    tenant, event, ai_cogs_usd=spec["correction"]),
                    "requested_model": spec["requested"]})
            if spec["attributed"] is not None:
                attributed.append((event, spec["attributed"]))
        send_batch(tenant, events, corrections, attributed, now=T0 + timedelta(seconds=SPAN + 3600))
    if allocated and n:
        allocation_create(tenant=tenant, source=cost_source(tenant, "AWS_CUR"), first=T0.date(),
                          last=(T0 + timedelta(seconds=SPAN - 1)).date(), by="EVENTS",
                          bucket="AI", amount=Decimal("1.000000001"))

    _cache_equals_ledger(tenant)

    start, end = sorted(window)
    end = max(end, start + timedelta(seconds=1))
    for customer, at in interventions:
        GuardAction.objects.create(
            tenant=tenant, customer_id=customer, product_id="", from_level=0, to_level=2,
            mode="ENFORCE", cost_usd=0, revenue_usd=0, events_evaluated=0, reason="test",
            actor="test", at=at)
        decision_count(tenant.slug, customer, "prod_chat", "batch", "BLOCKED", at=at)
        decision_count(tenant.slug, customer, "prod_chat", "gpt-4o", "RATE_LIMITED", at=at)
    decision_counts_flush()
    served = impact.impact_report(tenant=tenant, start=start, end=end)
    raw = impact.impact_report(tenant=tenant, start=start, end=end, read_models=False)
    assert served.as_json() == raw.as_json()
    for account in served.accounts:  # and the ledger's one margin function
        assert account.before == scope_margin(tenant.slug, start=account.before_start,
                                              end=account.first_intervention_at,
                                              customer_id=account.customer_id)
        assert account.after == scope_margin(tenant.slug, start=account.first_intervention_at,
                                             end=end, customer_id=account.customer_id)


@pytest.mark.parametrize("window", [
    (T0, T0 + timedelta(days=2)),  # whole UTC days: the daily read models
    (T0 + timedelta(days=1), T0 + timedelta(days=3)),
    (T0 + timedelta(hours=5), T0 + timedelta(days=2, hours=7)),  # partial days at both ends
    (T0 + timedelta(days=31), T0 + timedelta(days=62)),  # longer than the fallback's 30 days
], ids=["days", "later-days", "partial", "fallback-split"])
def test_windows_of_whole_and_partial_days_give_the_ledgers_report(store, tenant, window):
    """Calls on both sides of midnights (downgraded ones, tools, a correction), refused calls
    counted, an intervention mid-day: the report from the daily and per-second read models is
    the raw ledger's, for windows of whole days, partial days and one holding the fallback's
    30 days (a cut inside a day)."""
    for model, price_in, price_out in (("gpt-4o", "2.5", "10"), ("gpt-4o-mini", "0.15", "0.6")):
        model_price_create(tenant=tenant, provider="OpenAI", model=model,
                           effective_from=T0 - timedelta(days=2),
                           input_per_1m=Decimal(price_in), output_per_1m=Decimal(price_out))
    start, end = window
    span = (end - start).total_seconds()
    events = [{"eventId": f"w{n}", "customerId": f"cust_{n % 3}", "productId": "prod_chat",
               "occurredAt": start + timedelta(seconds=int(span * n / 40) - 1800),
               "provider": "OpenAI", "model": "gpt-4o-mini" if n % 2 else "gpt-4o",
               "cogsUsd": f"0.{n + 10}", "inputTokens": 1000 + n, "outputTokens": 100,
               **({"requestedModel": "gpt-4o"} if n % 2 else {}),
               **({"toolName": "batch"} if n % 3 == 1 else {}),
               **({"revenueUsd": "0.50"} if n % 4 else {})} for n in range(45)]
    send_batch(tenant, events, [cost_correction_entry(tenant, events[7], ai_cogs_usd="0.05")],
               [(events[3], Decimal("1.25"))], now=start + 2 * (end - start))
    at = start + timedelta(seconds=int(span / 2) + 777)
    GuardAction.objects.create(
        tenant=tenant, customer_id="cust_1", product_id="", from_level=0, to_level=2,
        mode="ENFORCE", cost_usd=0, revenue_usd=0, events_evaluated=0, reason="test",
        actor="test", at=at)
    for customer in ("cust_0", "cust_1", "cust_9"):
        decision_count(tenant.slug, customer, "prod_chat", "batch", "BLOCKED", at=at)
        decision_count(tenant.slug, customer, "prod_chat", "gpt-4o", "RATE_LIMITED", at=at)
    decision_counts_flush()
    served = impact.impact_report(tenant=tenant, start=start, end=end)
    assert served.throttled_calls and served.blocked_estimate_usd and served.accounts
    assert served.as_json() == impact.impact_report(tenant=tenant, start=start, end=end,
                                                    read_models=False).as_json()


def test_calls_a_minute_either_side_of_an_intervention_count_on_their_side(store, tenant):
    """The read model keeps each second: events a minute before and after an intervention at
    10:30 count before and after it."""
    at = datetime(2026, 4, 2, 10, 30, tzinfo=timezone.utc)
    end = at + timedelta(hours=2)
    ingest(tenant, [
        {"eventId": "before", "occurredAt": at - timedelta(minutes=1), "customerId": "cust_a",
         "productId": "prod_chat", "cogsUsd": "0.90", "revenueUsd": "1.00"},
        {"eventId": "after", "occurredAt": at + timedelta(minutes=1), "customerId": "cust_a",
         "productId": "prod_chat", "cogsUsd": "0.50", "revenueUsd": "1.00"},
    ], now=end)
    GuardAction.objects.create(
        tenant=tenant, customer_id="cust_a", product_id="", from_level=0, to_level=2,
        mode="ENFORCE", cost_usd=0, revenue_usd=0, events_evaluated=0, reason="test",
        actor="test", at=at)
    (account,) = impact.impact_report(tenant=tenant, start=at - timedelta(hours=1),
                                      end=end).accounts
    assert (account.before.events, account.before.cogs_usd) == (1, Decimal("0.90"))
    assert (account.after.events, account.after.cogs_usd) == (1, Decimal("0.50"))


@pytest.mark.parametrize("migration", ["0015_guard_impact", "0016_guard_impact_days"])
def test_the_migration_copies_what_the_ledger_already_holds(store, tenant, migration):
    """A migration's copy of the existing ledger (run here on this tenant's entries, which the
    views already hold, so the tables then hold each figure twice) fills every column from its
    own."""
    from importlib import import_module

    from aforo.eventstore.migrate import topology_for

    at = datetime(2026, 4, 2, 10, 15, tzinfo=timezone.utc)
    events = [{"eventId": f"e{n}", "occurredAt": at + timedelta(minutes=n),
               "customerId": f"cust_{n % 2}", "productId": "prod_chat", "provider": "OpenAI",
               "model": "gpt-4o-mini", "requestedModel": "gpt-4o", "inputTokens": 1000 + n,
               "outputTokens": 10, "cachedInputTokens": 5, "reasoningTokens": 3,
               "cogsUsd": "0.25", **({"revenueUsd": "0.40"} if n % 2 else {}),
               **({"toolName": "batch"} if n % 3 else {})} for n in range(6)]
    ingest(tenant, events, now=at + timedelta(hours=1))
    attribute(tenant, events[0], "1.00")
    module = import_module(f"aforo.eventstore.migrations.{migration}")
    tables = list(module.TABLES)
    once = {table: _sums(tenant, table) for table in tables}
    copies = [sql for sql in module.statements(topology_for(eventstore.get_store()))
              if sql.startswith("INSERT")]
    assert [sql.split()[2] for sql in copies] == tables
    for sql in copies:  # the copy, of this tenant's entries only (the test store is shared)
        eventstore.command(sql.replace(
            " FROM ledger ", " FROM (SELECT * FROM ledger WHERE tenant_id = %(tenant)s) "),
            {"tenant": tenant.slug})
    for table in tables:
        keys = SUMS[table][0]
        assert once[table] and all(any(row[keys:]) for row in once[table])
        assert _sums(tenant, table) == [(*row[:keys], *(2 * v for v in row[keys:]))
                                        for row in once[table]]


_DOWNGRADED_SUMS = "events tokens_in tokens_out tokens_cached tokens_reasoning cogs_ai"
SUMS = {  # each table: how many key columns lead, and its measures
    "guard_downgraded": (4, _DOWNGRADED_SUMS), "guard_downgraded_days": (4, _DOWNGRADED_SUMS),
    "guard_customer_calls": (4, "events cogs revenue revenue_carried revenue_rated "
                                "events_unsourced b_cogs"),
    "guard_customer_days": (4, "events cogs"),
}
KEYS = {"guard_downgraded": "occurred_at, provider, requested_model, model",
        "guard_downgraded_days": "day, provider, requested_model, model",
        "guard_customer_calls": "occurred_at, customer_id, tool_name, model",
        "guard_customer_days": "day, customer_id, tool_name, model"}


def _sums(tenant, table: str) -> list[tuple]:
    measures = ", ".join(f"sum({m})" for m in SUMS[table][1].split())
    return _rows(tenant, f"SELECT {KEYS[table]}, {measures} FROM {table} "
                         f"WHERE tenant_id = %(tenant_id)s GROUP BY {KEYS[table]}")
