"""Property: for any mix of revenue sources, the sum over events of expected revenue equals
attributed + carried + rated + estimated, per customer and in total, exact, whether the figures
come from the rollups or the raw ledger; carried and rated equal what was sent and what the plan
charges, worked out here by hand."""
from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo.tenancy import tenant_create
from billing.attribution import attribution_run
from cogs import queries
from cogs.queries import Period, TagFloors, TransactionFilters
from tests.factories import ingest, invoice_lines, on_plan

OCT = datetime(2026, 10, 1, tzinfo=timezone.utc)
NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEC = datetime(2026, 12, 1, tzinfo=timezone.utc)
NOVEMBER = Period(first=date(2026, 11, 1), last=date(2026, 11, 30))
CUSTOMERS = ["c0", "c1", "c2", "c3"]
PLAN_PRICE = Decimal("0.07")
money = st.decimals(min_value=Decimal(0), max_value=Decimal("5"), places=9, allow_nan=False,
                    allow_infinity=False)

customer_setups = st.fixed_dictionaries({
    "plan": st.booleans(),               # rated at PLAN_PRICE per event
    "invoiced_october": st.booleans(),   # a rate to estimate from
    "invoiced_november": st.booleans(),  # settles its November events
    "october_unit": st.sampled_from(["EVENTS", "TOKENS", "TOOL_CALLS", "FLAT"]),
    "october_amount": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("50"), places=2),
})
events = st.lists(st.fixed_dictionaries({
    "customer": st.sampled_from(CUSTOMERS), "product": st.sampled_from(["p1", "p2"]),
    "day": st.integers(1, 28), "tokens": st.integers(0, 5000), "tools": st.integers(0, 3),
    "cost": money, "revenue": st.one_of(st.none(), money),
}), min_size=1, max_size=30)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(setups=st.lists(customer_setups, min_size=4, max_size=4), sent=events)
def test_expected_revenue_adds_up_for_any_mix_of_sources(store, db, setups, sent):
    tenant = tenant_create(slug=f"x-{uuid.uuid4().hex[:12]}", name="property")
    setup = dict(zip(CUSTOMERS, setups, strict=True))
    for customer, spec in setup.items():
        if spec["plan"]:
            on_plan(tenant, customer, starts_at=OCT, components=[("PER_EVENT", str(PLAN_PRICE))])
    # October: one event per customer and product to learn a rate from, invoiced or not.
    ingest(tenant, [{"eventId": f"oct-{c}-{p}", "occurredAt": "2026-10-10T00:00:00Z",
                     "customerId": c, "productId": p, "inputTokens": 700, "outputTokens": 300,
                     "toolCalls": 1, "cogsUsd": "0.01"} for c in CUSTOMERS for p in ("p1", "p2")])
    for customer, spec in setup.items():
        if spec["invoiced_october"]:
            invoice_lines(tenant, f"oct-{customer}", customer=customer, start=OCT, end=NOV,
                          lines=[("l", "p1", str(spec["october_amount"]), spec["october_unit"])])
    november = [{"eventId": f"nov{i}", "occurredAt": f"2026-11-{e['day']:02d}T12:00:00Z",
                 "customerId": e["customer"], "productId": e["product"],
                 "inputTokens": e["tokens"], "toolCalls": e["tools"], "cogsUsd": str(e["cost"]),
                 **({"revenueUsd": str(e["revenue"])} if e["revenue"] is not None else {})}
                for i, e in enumerate(sent)]
    ingest(tenant, november)
    for customer, spec in setup.items():
        if spec["invoiced_november"]:
            invoice_lines(tenant, f"nov-{customer}", customer=customer, start=NOV, end=DEC,
                          lines=[("l", "", "3.00", "EVENTS")])
    attribution_run(tenant=tenant)

    # By hand: what was carried and what the plans rate, of the events no invoice settles.
    carried, rated = Decimal(0), Decimal(0)
    for e in sent:
        if setup[e["customer"]]["invoiced_november"]:
            continue
        if e["revenue"] is not None:
            carried += e["revenue"]
        elif setup[e["customer"]]["plan"]:
            rated += PLAN_PRICE

    rows, total = queries.transactions_page(tenant, NOVEMBER, TransactionFilters(), offset=0,
                                            limit=1000)
    assert total == len(sent)
    per_event: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        per_event[row.customer_id] += row.expected_revenue_usd
    for use_rollups in (True, False):
        headline = queries.overview(tenant, NOVEMBER, use_rollups=use_rollups,
                                    estimate=True).totals
        assert (headline.carried_usd, headline.rated_usd) == (carried, rated)
        assert headline.expected_revenue_usd == (
            headline.revenue_usd + headline.carried_usd + headline.rated_usd
            + headline.estimated_usd) == sum(per_event.values(), Decimal(0))
        customers = queries.customer_ledger(tenant, NOVEMBER, TagFloors(),
                                            use_rollups=use_rollups)
        assert {c.customer_id: c.expected_revenue_usd for c in customers} == {
            c: per_event[c] for c in {e["customer"] for e in sent}}
