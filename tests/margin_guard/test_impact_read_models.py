"""The impact report's read models (event-store migration 0015) are caches of the ledger: after
any mix of ingests (downgraded calls, tools, models, provisional revenue or none), cost
corrections, allocations and attributions (REVENUE and SETTLE entries), each holds exactly what
the raw ledger says, and the report read from them gives the figures the raw ledger gives for
windows and interventions at any second, on every event-store backend."""
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
HOURS = 6
CUSTOMERS = ["cust_1", "cust_2", "cust_3", ""]
MODELS = ["gpt-4o", "gpt-4o-mini", ""]
money = ledger_amounts
instants = st.integers(min_value=0, max_value=HOURS * 3600).map(
    lambda s: T0 + timedelta(seconds=s))

batches = st.lists(st.lists(st.fixed_dictionaries({
    "second": st.one_of(st.sampled_from([0, 3599, 3600, 7200]),
                        st.integers(0, HOURS * 3600 - 1)),
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


def _cache_equals_ledger(tenant) -> None:
    """Each read model, summed per key, against the same sums over the raw ledger (rows whose
    sums are all zero dropped on both sides: a summing table drops them when it merges)."""
    cached = _rows(tenant, "SELECT occurred_at, provider, requested_model, model, "
                           "toInt64(sum(events)) AS e, toInt64(sum(tokens_in)) AS i, "
                           "toInt64(sum(tokens_out)) AS o, sum(cogs_ai) AS c FROM guard_downgraded "
                           "WHERE tenant_id = %(tenant_id)s "
                           "GROUP BY occurred_at, provider, requested_model, model "
                           "HAVING e != 0 OR i != 0 OR o != 0 OR c != 0")
    raw = _rows(tenant, "SELECT occurred_at, provider, requested_model, "
                        "model, toInt64(sum(event_count)) AS e, toInt64(sum(input_tokens)) AS i, "
                        "toInt64(sum(output_tokens)) AS o, sum(ai_cogs_usd) AS c FROM ledger "
                        "WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' "
                        "AND allocation_id = '' AND requested_model != '' "
                        "AND requested_model != model "
                        "GROUP BY occurred_at, provider, requested_model, model "
                        "HAVING e != 0 OR i != 0 OR o != 0 OR c != 0")
    assert cached == raw
    measures = ("events", "cogs", "revenue", "revenue_carried", "revenue_rated",
                "events_unsourced", "b_cogs")
    nonzero = " OR ".join(f"{m} != 0" for m in measures)
    cached = _rows(tenant, "SELECT occurred_at, customer_id, tool_name, model, " + ", ".join(
        f"{MEASURES[m].read_models[Table.GUARD_CUSTOMERS]} AS {m}" for m in measures)
        + " FROM guard_customer_calls WHERE tenant_id = %(tenant_id)s "
          f"GROUP BY occurred_at, customer_id, tool_name, model HAVING {nonzero}")
    raw = _rows(tenant, "SELECT occurred_at, customer_id, tool_name, "
                        "model, " + ", ".join(f"{MEASURES[m].raw} AS {m}" for m in measures)
                + " FROM ledger WHERE tenant_id = %(tenant_id)s "
                  f"GROUP BY occurred_at, customer_id, tool_name, model HAVING {nonzero}")
    assert cached == raw


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
        send_batch(tenant, events, corrections, attributed, now=T0 + timedelta(hours=HOURS + 1))
    if allocated and n:
        allocation_create(tenant=tenant, source=cost_source(tenant, "AWS_CUR"), first=T0.date(),
                          last=T0.date(), by="EVENTS", bucket="AI", amount=Decimal("1.000000001"))

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


def test_the_migration_copies_what_the_ledger_already_holds(store, tenant):
    """0015's copy of the existing ledger (run here on this tenant's entries, which the views
    already hold, so the tables then hold each figure twice) fills every column from its own."""
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
    once = {table: _sums(tenant, table) for table in SUMS}
    migration = import_module("aforo.eventstore.migrations.0015_guard_impact")
    copies = [sql for sql in migration.statements(topology_for(eventstore.get_store()))
              if sql.startswith("INSERT")]
    assert len(copies) == 2
    for sql in copies:  # the copy, of this tenant's entries only (the test store is shared)
        eventstore.command(sql.replace(
            " FROM ledger ", " FROM (SELECT * FROM ledger WHERE tenant_id = %(tenant)s) "),
            {"tenant": tenant.slug})
    for table, (keys, _measures) in SUMS.items():
        assert once[table] and all(any(row[keys:]) for row in once[table])
        assert _sums(tenant, table) == [(*row[:keys], *(2 * v for v in row[keys:]))
                                        for row in once[table]]


SUMS = {  # each table: how many key columns lead, and its measures
    "guard_downgraded": (4, "events tokens_in tokens_out tokens_cached tokens_reasoning "
                                   "cogs_ai"),
    "guard_customer_calls": (4, "events cogs revenue revenue_carried revenue_rated "
                                 "events_unsourced b_cogs"),
}
KEYS = {"guard_downgraded": "occurred_at, provider, requested_model, model",
        "guard_customer_calls": "occurred_at, customer_id, tool_name, model"}


def _sums(tenant, table: str) -> list[tuple]:
    measures = ", ".join(f"sum({m})" for m in SUMS[table][1].split())
    return _rows(tenant, f"SELECT {KEYS[table]}, {measures} FROM {table} "
                         f"WHERE tenant_id = %(tenant_id)s GROUP BY {KEYS[table]}")
