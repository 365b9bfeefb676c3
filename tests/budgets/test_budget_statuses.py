"""A list of budgets is measured in one grouped ledger read, and each budget's spend is exactly
what `scope_margin` gives its scope alone, and what its events cost, summed by hand."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo.periods import period_bounds
from aforo.tenancy import tenant_create
from budgets import services
from budgets.models import CostBudget
from cogs.expected import CostScope, scope_margin, scopes_cogs
from cogs.services import cogs_settings_update
from intelligence.pacing import budget_subjects
from tests.conftest import api_client
from tests.console.conftest import console_user
from tests.factories import ingest

PERIODS = [p for p, _label in CostBudget.Period.choices]
ZONES = ["UTC", "Asia/Tokyo", "America/New_York"]
CUSTOMERS = ["c0", "c1", "c2"]
PRODUCTS = ["p0", "p1", "p2"]
YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc)
OLD = timedelta(days=380)  # before every period holding now, inside the retention
money = st.decimals(min_value=Decimal(0), max_value=Decimal("3"), places=9, allow_nan=False,
                    allow_infinity=False)


@st.composite
def ledgers(draw):
    """A time zone, a moment in 2026, events around it and budgets of every shape."""
    zone = draw(st.sampled_from(ZONES))
    now = YEAR + timedelta(seconds=draw(st.integers(0, 365 * 86400 - 1)))
    # Events on and beside every bound a budget can have: its period's start, and now.
    bounds = [now, *(period_bounds(p, now, zone)[0] for p in PERIODS)]
    near = st.builds(lambda bound, step: bound + timedelta(seconds=step),
                     st.sampled_from(bounds), st.integers(-2, 2))
    anywhere = st.builds(lambda step: now + timedelta(seconds=step),  # ingest takes 5 min ahead
                         st.integers(-int(OLD.total_seconds()), 240))
    sent = draw(st.lists(st.fixed_dictionaries({
        "at": st.one_of(near, anywhere), "customer": st.sampled_from(CUSTOMERS),
        "product": st.sampled_from(PRODUCTS), "cost": money}), max_size=25))
    budgets = draw(st.lists(st.fixed_dictionaries({
        "period": st.sampled_from(PERIODS), "product": st.sampled_from(["", *PRODUCTS]),
        "customer": st.sampled_from(["", *CUSTOMERS]),
        "cap": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("20"), places=2)}),
        min_size=1, max_size=8))
    return zone, now, sent, budgets


def _ingested(tenant, sent: list[dict], now: datetime) -> list[dict]:
    """`sent` ingested at `now`, after one old event per customer and product (so every scope
    exists); every event as (at, customer, product, cost)."""
    seeds = [{"at": now - OLD, "customer": c, "product": p, "cost": Decimal("0.5")}
             for c in CUSTOMERS for p in PRODUCTS]
    every = seeds + sent
    ingest(tenant, [{"eventId": f"e{n}", "occurredAt": e["at"], "customerId": e["customer"],
                     "productId": e["product"], "cogsUsd": format(e["cost"], "f")}
                    for n, e in enumerate(every)], now=now)
    return every


def _by_hand(every: list[dict], *, start: datetime, end: datetime, product: str,
             customer: str) -> Decimal:
    return sum((e["cost"] for e in every if start <= e["at"] < end
                and (not product or e["product"] == product)
                and (not customer or e["customer"] == customer)), Decimal(0))


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ledger=ledgers())
def test_each_budgets_spend_is_its_scope_margin_and_its_events_summed(store, db, ledger):
    zone, now, sent, specs = ledger
    tenant = tenant_create(slug=f"b-{uuid.uuid4().hex[:12]}", name="property")
    cogs_settings_update(tenant=tenant, time_zone=zone)
    every = _ingested(tenant, sent, now)
    for n, spec in enumerate(specs):
        services.budget_create(tenant=tenant, name=f"b{n}", period=spec["period"],
                               cap_usd=spec["cap"], product_id=spec["product"],
                               customer_id=spec["customer"])
    budgets = list(CostBudget.objects.filter(tenant=tenant).select_related("tenant"))

    statuses = services.budget_statuses(budgets, now=now)

    assert [s.budget for s in statuses] == budgets
    for budget, state in zip(budgets, statuses, strict=True):
        start, end = period_bounds(budget.period, now, zone)
        assert (state.period_start, state.period_end) == (start, end)
        alone = scope_margin(tenant.slug, start=start, end=now,
                             product_id=budget.product_id or None,
                             customer_id=budget.customer_id or None)
        assert state.spent_usd == alone.cogs_usd == _by_hand(
            every, start=start, end=now, product=budget.product_id,
            customer=budget.customer_id), budget
        assert state.utilization_pct == state.spent_usd / budget.cap_usd * 100
        assert state == services.budget_status(budget, now=now)


@st.composite
def scoped_ledgers(draw):
    """Events over a few days and scopes of any windows over them (ends apart, bounds on and
    beside events, empty and reversed windows)."""
    base = YEAR + timedelta(days=draw(st.integers(0, 300)))
    instants = st.builds(lambda s: base + timedelta(seconds=s), st.integers(0, 4 * 86400))
    sent = draw(st.lists(st.fixed_dictionaries({
        "at": instants, "customer": st.sampled_from(CUSTOMERS),
        "product": st.sampled_from(PRODUCTS), "cost": money}), min_size=1, max_size=25))
    bounds = st.one_of(instants, st.builds(lambda e, step: e["at"] + timedelta(seconds=step),
                                           st.sampled_from(sent), st.integers(-1, 1)))
    scopes = draw(st.lists(st.builds(
        CostScope, bounds, bounds, st.sampled_from(["", *PRODUCTS]),
        st.sampled_from(["", *CUSTOMERS])), min_size=1, max_size=10))
    return base + timedelta(days=4), sent, scopes


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ledger=scoped_ledgers())
def test_any_scopes_cogs_are_each_scopes_own_margin_and_its_events_summed(store, db, ledger):
    now, sent, scopes = ledger
    tenant = tenant_create(slug=f"s-{uuid.uuid4().hex[:12]}", name="property")
    every = _ingested(tenant, sent, now)
    found = scopes_cogs(tenant.slug, scopes)
    assert set(found) == set(scopes)
    for scope in scopes:
        assert found[scope] == scope_margin(
            tenant.slug, start=scope.start, end=scope.end, product_id=scope.product_id or None,
            customer_id=scope.customer_id or None).cogs_usd == _by_hand(
            every, start=scope.start, end=scope.end, product=scope.product_id,
            customer=scope.customer_id), scope


@pytest.mark.django_db
def test_scopes_of_a_window_that_ends_inside_an_events_second_read_as_scope_margin(store,
                                                                                  tenant):
    """Bounds with microseconds (a budget's end is `now`) and empty scopes: what scope_margin
    gives, scope for scope."""
    at = datetime(2026, 11, 10, 12, 0, 0, tzinfo=timezone.utc)
    ingest(tenant, [{"eventId": f"e{n}", "occurredAt": at + timedelta(seconds=n),
                     "customerId": "c0", "productId": "p0", "cogsUsd": "0.25"}
                    for n in range(3)])
    scopes = [CostScope(at, at + timedelta(seconds=1, microseconds=500_000)),
              CostScope(at + timedelta(microseconds=1), at + timedelta(seconds=3)),
              CostScope(at, at + timedelta(seconds=3), product_id="p0", customer_id="c0"),
              CostScope(at, at + timedelta(seconds=3), product_id="nope"),
              CostScope(at, at)]
    found = scopes_cogs(tenant.slug, scopes)
    assert found == {s: scope_margin(tenant.slug, start=s.start, end=s.end,
                                     product_id=s.product_id or None,
                                     customer_id=s.customer_id or None).cogs_usd
                     for s in scopes}
    assert scopes_cogs(tenant.slug, []) == {}


@pytest.mark.django_db
def test_budgets_of_two_tenants_each_read_their_own_spend(store, tenant, other_tenant):
    now = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    for owner, cost in ((tenant, "1.5"), (other_tenant, "4")):
        ingest(owner, [{"eventId": "e1", "occurredAt": now - timedelta(days=1),
                        "customerId": "c0", "productId": "p0", "cogsUsd": cost}])
    ours = services.budget_create(tenant=tenant, name="ours", period="MONTHLY",
                                  cap_usd=Decimal(10))
    theirs = services.budget_create(tenant=other_tenant, name="theirs", period="MONTHLY",
                                    cap_usd=Decimal(10), product_id="p0")
    statuses = services.budget_statuses([theirs, ours], now=now)
    assert [(s.budget, s.spent_usd) for s in statuses] == [(theirs, Decimal(4)),
                                                           (ours, Decimal("1.5"))]
    assert services.budget_statuses([], now=now) == []


# --- one ledger read for a list of budgets, wherever it is listed ------------------------------

def _many_budgets(tenant, count: int = 25) -> None:
    # a minute back: the event store keeps whole seconds, so an event in the current second
    # would count for a read a second later and not for one now
    now = datetime.now(timezone.utc) - timedelta(minutes=1)
    ingest(tenant, [{"eventId": f"e{n}", "occurredAt": now - timedelta(hours=n),
                     "customerId": CUSTOMERS[n % 3], "productId": PRODUCTS[n % 2],
                     "cogsUsd": "0.01"} for n in range(30)])
    for n in range(count):
        services.budget_create(
            tenant=tenant, name=f"b{n:02d}", period=PERIODS[n % 3], cap_usd=Decimal("0.05"),
            product_id=("", *PRODUCTS[:2])[n % 3], customer_id=("", *CUSTOMERS)[n % 4])


@pytest.mark.django_db
def test_the_budget_list_reads_the_ledger_once_for_its_page(store, tenant, ledger_reads):
    _many_budgets(tenant)
    ledger_reads.clear()
    body = api_client(tenant).get("/api/v1/cogs/budgets").json()
    assert len(ledger_reads) == 1
    assert len(body["content"]) == 25
    for row in body["content"]:  # and each is what its own read would say
        budget = CostBudget.objects.get(pk=row["id"])
        start = datetime.fromisoformat(row["periodStart"].replace("Z", "+00:00"))
        alone = scope_margin(tenant.slug, start=start, end=datetime.now(timezone.utc),
                             product_id=budget.product_id or None,
                             customer_id=budget.customer_id or None)
        assert Decimal(str(row["spentUsd"])) == alone.cogs_usd


@pytest.mark.django_db
def test_the_console_tab_reads_the_ledger_once_for_its_cards(store, tenant, ledger_reads):
    _many_budgets(tenant)
    client = Client()
    client.force_login(console_user(tenant))
    ledger_reads.clear()
    response = client.get("/console/cogs/budgets/")
    assert response.status_code == 200
    assert response.content.count(b"data-budget") >= 25
    assert len(ledger_reads) == 1


@pytest.mark.django_db
def test_evaluation_and_pacing_read_the_ledger_once_for_a_tenants_budgets(store, tenant,
                                                                       ledger_reads):
    _many_budgets(tenant)
    now = datetime.now(timezone.utc)
    ledger_reads.clear()
    fired = services.alerts_evaluate(now=now, tenant=tenant)
    assert len(ledger_reads) == 1
    assert fired  # 0.05 caps: some budgets are over
    ledger_reads.clear()
    subjects = list(budget_subjects(tenant, now))
    assert len(subjects) == 25 and len(ledger_reads) == 1
