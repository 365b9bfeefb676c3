"""Reconciliation: for any batch of events, corrections and revenue, every grain sums to the
same totals, exactly, on both event-store backends; and the rollups equal the raw ledger."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo.ledger import ledger_append
from aforo.tenancy import tenant_create
from cogs import queries
from tests.conftest import api_client
from tests.factories import cost_correction_entry, ingest, ledger_amounts, revenue_entry

pytestmark = pytest.mark.django_db
FIRST, LAST = date(2026, 4, 1), date(2026, 4, 3)
PERIOD = queries.Period(first=FIRST, last=LAST)
PRODUCTS = {"prod_a": "API_WITH_AI", "prod_b": "AI_AGENT", "prod_c": "SAAS"}
MODELS = [("Anthropic", "claude-haiku-4-5"), ("OpenAI", "gpt-4o"), ("OpenAI", "o3"), ("", "")]
BUCKETS = ("ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "unclassified_cogs_usd")

money = ledger_amounts
signed_money = st.decimals(min_value=Decimal("-1"), max_value=Decimal("3"), places=9,
                           allow_nan=False, allow_infinity=False)
event_strategy = st.fixed_dictionaries({
    # Days just outside the period check its edges; seconds reach 23:59:59.
    "day": st.integers(min_value=-1, max_value=3),
    "second": st.integers(min_value=0, max_value=86_399),
    "customer": st.sampled_from(["cust_1", "cust_2", "cust_3", ""]),
    "product": st.sampled_from(sorted(PRODUCTS)),
    "model": st.sampled_from(MODELS),
    "split": st.booleans(),
    "costs": st.tuples(money, money, money),
    "tokens": st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)),
    "correction": st.one_of(st.none(), st.tuples(signed_money, signed_money)),
    "revenue": st.lists(signed_money, max_size=2),
})


def _write(tenant, generated: list[dict]) -> list[dict]:
    """Writes the batch; returns the expected per-event numbers for events in the period."""
    events, extra, expected = [], [], []
    for n, spec in enumerate(generated):
        at = datetime.combine(FIRST + timedelta(days=spec["day"]), datetime.min.time(),
                              tzinfo=timezone.utc) + timedelta(seconds=spec["second"])
        provider, model = spec["model"]
        ai, infra, fee = spec["costs"]
        event = {"eventId": f"evt_{n}", "occurredAt": at, "customerId": spec["customer"],
                 "productId": spec["product"], "productType": PRODUCTS[spec["product"]],
                 "provider": provider, "model": model, "inputTokens": spec["tokens"][0],
                 "outputTokens": spec["tokens"][1]}
        buckets = dict.fromkeys(BUCKETS, Decimal(0))
        if spec["split"]:
            event |= {"aiCogsUsd": ai, "infraCogsUsd": infra, "feeCogsUsd": fee}
            buckets |= {"ai_cogs_usd": ai, "infra_cogs_usd": infra, "fee_cogs_usd": fee}
        else:
            event["cogsUsd"] = ai + infra + fee
            buckets["unclassified_cogs_usd"] = ai + infra + fee
        events.append(event)
        if spec["correction"]:
            ai_fix, unclassified_fix = spec["correction"]
            extra.append(cost_correction_entry(tenant, event, ai_cogs_usd=ai_fix,
                                               unclassified_cogs_usd=unclassified_fix))
            buckets["ai_cogs_usd"] += ai_fix
            buckets["unclassified_cogs_usd"] += unclassified_fix
        extra += [revenue_entry(tenant, event, amount) for amount in spec["revenue"]]
        if FIRST <= at.date() <= LAST:
            expected.append({**buckets, "event_id": event["eventId"],
                             "revenue_usd": sum(spec["revenue"], Decimal(0)),
                             "input_tokens": spec["tokens"][0],
                             "output_tokens": spec["tokens"][1]})
    if events:
        ingest(tenant, events)
    if extra:
        ledger_append(extra)
    return expected


def _measures(t: queries.Totals) -> tuple:
    return (t.event_count, t.input_tokens, t.output_tokens, t.ai_cogs_usd, t.infra_cogs_usd,
            t.fee_cogs_usd, t.unclassified_cogs_usd, t.revenue_usd)


def _all_transactions(tenant, use_rollups=True) -> tuple[list[queries.Transaction], int]:
    rows, offset = [], 0
    while True:
        page, total = queries.transactions_page(tenant, PERIOD, queries.TransactionFilters(),
                                                offset=offset, limit=7,
                                                use_rollups=use_rollups)
        rows += page
        offset += 7
        if offset >= total:
            return rows, total


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(generated=st.lists(event_strategy, max_size=25))
def test_every_grain_reconciles_exactly(store, generated):
    tenant = tenant_create(slug=f"r-{uuid.uuid4().hex[:12]}", name="Reconciliation")
    expected = _write(tenant, generated)

    oracle = queries.Totals(
        event_count=len(expected),
        input_tokens=sum(e["input_tokens"] for e in expected),
        output_tokens=sum(e["output_tokens"] for e in expected),
        **{b: sum((e[b] for e in expected), Decimal(0)) for b in BUCKETS},
        revenue_usd=sum((e["revenue_usd"] for e in expected), Decimal(0)),
    )
    headline = queries.overview(tenant, PERIOD).totals
    assert _measures(headline) == _measures(oracle)

    for dimension in queries.Dimension:
        rolled = queries.totals_by(tenant, dimension, PERIOD)
        assert _measures(queries.totals_sum(rolled)) == _measures(oracle), dimension
        raw = queries.totals_by(tenant, dimension, PERIOD, use_rollups=False)
        assert sorted(map(_measures, rolled)) == sorted(map(_measures, raw)), dimension
        assert sorted(r.key for r in rolled) == sorted(r.key for r in raw), dimension
    # The anomalies' per-entry cost table holds the same money as the ledger.
    from aforo import eventstore

    entry_costs = eventstore.tenant_query(
        tenant.slug,
        "SELECT sum(cogs) AS cogs FROM ledger_event_costs WHERE tenant_id = %(tenant_id)s "
        "AND occurred_at >= %(start)s AND occurred_at < %(end)s",
        {"start": PERIOD.start_at, "end": PERIOD.end_at})
    assert (entry_costs[0]["cogs"] or 0) == oracle.cogs_usd
    models = queries.models_breakdown(tenant, PERIOD)
    assert _measures(queries.totals_sum(m.totals for m in models)) == _measures(oracle)
    assert sum(d.cogs_usd for d in queries.daily_series(tenant, PERIOD)) == oracle.cogs_usd

    transactions, total = _all_transactions(tenant)
    assert total == len(expected) == len(transactions)
    assert sorted(t.event_id for t in transactions) == sorted(e["event_id"] for e in expected)
    for bucket in BUCKETS:
        assert sum((getattr(t, bucket) for t in transactions), Decimal(0)) == getattr(oracle,
                                                                                     bucket)
    assert sum((t.revenue_usd for t in transactions), Decimal(0)) == oracle.revenue_usd
    assert sum((t.cogs_usd for t in transactions), Decimal(0)) == headline.cogs_usd
    raw_rows, raw_total = _all_transactions(tenant, use_rollups=False)
    assert raw_total == total and [t.event_id for t in raw_rows] == [
        t.event_id for t in transactions]
    assert [t.occurred_at for t in transactions] == sorted(
        (t.occurred_at for t in transactions), reverse=True)

    # Through the API, rounded to 6 decimals per number, everything agrees to the cent.
    client = api_client(tenant)
    period = {"from": FIRST.isoformat(), "to": LAST.isoformat()}
    base = "/api/v1/analytics/cogs/dashboard"
    top = client.get(base, period).json()
    composition = client.get(base + "/cost-composition", period).json()
    assert top["eventCount"] == len(expected)
    cent = 0.01 - 1e-9
    for rows_path in ("/by-product", "/by-customer", "/by-model"):
        rows = client.get(base + rows_path, period).json()
        assert abs(sum(r["cogsUsd"] for r in rows) - top["totalCogsUsd"]) < cent, rows_path
    assert abs(composition["totalCogsUsd"] - top["totalCogsUsd"]) < cent
    assert abs(float(oracle.cogs_usd) - top["totalCogsUsd"]) < cent
    assert abs(float(oracle.revenue_usd) - top["revenueUsd"]) < cent
    pages = client.get(base + "/transactions", {**period, "size": 200}).json()
    assert abs(sum(r["cogsUsd"] for r in pages["content"]) - top["totalCogsUsd"]) < cent
    assert abs(sum(r["revenueUsd"] for r in pages["content"]) - top["revenueUsd"]) < cent
