"""Property: whatever sequence of subscribe / end / change plan / edit / delete a tenant sends,
a customer is never on two plans at once, and ingest's plan book rates every moment by the one
subscription in force then (or not at all)."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo.catalog import customer_create
from aforo.errors import DomainError
from aforo.tenancy import tenant_create
from billing import services
from billing.models import Subscription
from billing.rating import plan_book_build

DAY0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
DAYS = 12
CUSTOMERS = ("c1", "c2")
PRICES = {"p1": Decimal(1), "p2": Decimal(2), "p3": Decimal(3)}


def day(n: int) -> datetime:
    return DAY0 + timedelta(days=n)


moments = st.integers(0, DAYS)
ends = st.one_of(st.none(), moments)
creates = st.tuples(st.just("create"), st.sampled_from(CUSTOMERS),
                    st.sampled_from(list(PRICES)), moments, ends)
operations = st.lists(st.one_of(
    creates, creates,  # twice as likely: most sequences then hold several terms to clash
    st.tuples(st.just("end"), st.integers(0, 5), moments),
    st.tuples(st.just("change"), st.integers(0, 5), st.sampled_from(list(PRICES)), moments),
    st.tuples(st.just("update"), st.integers(0, 5), moments, ends),
    st.tuples(st.just("delete"), st.integers(0, 5), moments),
), min_size=1, max_size=14)


def _apply(tenant, plans, customers, operation) -> None:
    kind, *args = operation
    subs = list(Subscription.objects.filter(tenant=tenant).order_by("pk")
                .select_related("customer", "tenant"))
    if kind == "create":
        customer, plan, start, end = args
        services.subscription_create(tenant=tenant, customer=customers[customer],
                                     plan=plans[plan], starts_at=day(start),
                                     ends_at=None if end is None else day(end))
        return
    if not subs:
        return
    sub = subs[args[0] % len(subs)]
    if kind == "end":
        services.subscription_end(subscription=sub, at=day(args[1]))
    elif kind == "change":
        services.subscription_change_plan(subscription=sub, plan=plans[args[1]], at=day(args[2]))
    elif kind == "update":
        services.subscription_update(subscription=sub, starts_at=day(args[1]),
                                     ends_at=None if args[2] is None else day(args[2]))
    else:
        services.subscription_delete(subscription=sub, now=day(args[1]))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_no_customer_is_ever_on_two_plans_and_rating_agrees(db, ops):
    tenant = tenant_create(slug=f"h-{uuid.uuid4().hex[:12]}", name="property")
    plans = {code: services.rate_plan_create(tenant=tenant, code=code, components=[
        services.ComponentSpec("PER_EVENT", price)]) for code, price in PRICES.items()}
    customers = {c: customer_create(tenant=tenant, external_id=c) for c in CUSTOMERS}
    for operation in ops:
        try:
            _apply(tenant, plans, customers, operation)
        except DomainError as refused:
            assert refused.status in (400, 409), refused

    subs = list(Subscription.objects.filter(tenant=tenant).select_related("customer", "plan"))
    for a in subs:
        assert a.ends_at is None or a.ends_at > a.starts_at
        for b in subs:
            if a.pk < b.pk and a.customer_id == b.customer_id:
                overlap = (a.starts_at < (b.ends_at or datetime.max.replace(tzinfo=timezone.utc))
                           and b.starts_at < (a.ends_at or datetime.max.replace(
                               tzinfo=timezone.utc)))
                assert not overlap, (a, b)

    book = plan_book_build(tenant)
    for customer in CUSTOMERS:
        for hour in range(0, (DAYS + 2) * 24, 6):
            at = DAY0 - timedelta(days=1) + timedelta(hours=hour)
            in_force = [s for s in subs if s.customer.external_id == customer
                        and s.starts_at <= at and (s.ends_at is None or at < s.ends_at)]
            rates = book.rates_at(customer, at)
            if not in_force:
                assert rates is None, (customer, at)
            else:
                assert rates.for_product("x").per_event == PRICES[in_force[0].plan.code]
