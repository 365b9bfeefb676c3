"""Property: over random lines and events, every line's parts sum exactly to the line, each part
is within one nanodollar of its exact proportional share, and the parts rounded up are those
with the largest remainders."""
from __future__ import annotations

import uuid
from decimal import Decimal
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aforo.tenancy import tenant_create
from billing.attribution import attribution_run
from tests.factories import event, ingest, invoice, revenue_entries

UNITS = ["EVENTS", "FLAT", "INPUT_TOKENS", "OUTPUT_TOKENS", "TOKENS", "TOOL_CALLS",
         "REASONING_STEPS"]
WEIGHT = {
    "EVENTS": lambda e: 1, "FLAT": lambda e: 1,
    "INPUT_TOKENS": lambda e: e["inputTokens"], "OUTPUT_TOKENS": lambda e: e["outputTokens"],
    "TOKENS": lambda e: e["inputTokens"] + e["outputTokens"],
    "TOOL_CALLS": lambda e: e["toolCalls"], "REASONING_STEPS": lambda e: e["reasoningSteps"],
}
NANO = Decimal("0.000000001")

amounts = st.decimals(min_value=Decimal("-1000"), max_value=Decimal("100000"), places=9,
                      allow_nan=False, allow_infinity=False)
usage = st.fixed_dictionaries({
    "inputTokens": st.integers(0, 10_000_000), "outputTokens": st.integers(0, 50_000),
    "toolCalls": st.integers(0, 5), "reasoningSteps": st.integers(0, 3),
    "product": st.sampled_from(["p1", "p2"]),
})


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(events=st.lists(usage, min_size=1, max_size=25),
       lines=st.lists(st.tuples(amounts, st.sampled_from(UNITS), st.sampled_from(["p1", "p2"])),
                      min_size=1, max_size=4))
def test_allocation_sums_exactly_to_every_line(store, db, events, lines):
    tenant = tenant_create(slug=f"h-{uuid.uuid4().hex[:12]}", name="property")
    api_events = [event(f"e{i}", product=u["product"],
                        **{k: v for k, v in u.items() if k != "product"})
                  for i, u in enumerate(events)]
    ingest(tenant, api_events)
    invoice(tenant, lines=[(f"l{i}", product, str(amount), unit)
                           for i, (amount, unit, product) in enumerate(lines)])
    attribution_run(tenant=tenant)
    parts: dict[str, dict[str, Decimal]] = {}
    for entry in revenue_entries(tenant):
        parts.setdefault(entry["invoice_line_id"], {})[entry["event_id"]] = entry["revenue_usd"]
    for i, (amount, unit, product) in enumerate(lines):
        mine = [e for e in api_events if e["productId"] == product]
        got = parts.get(f"l{i}", {})
        if not mine or amount == 0:
            assert got == {}
            continue
        assert sum(got.values()) == amount, (unit, amount)
        weights = {e["eventId"]: WEIGHT[unit](e) for e in mine}
        total = sum(weights.values())
        if total == 0:  # no event has the unit: equal shares
            weights, total = {k: 1 for k in weights}, len(weights)
        rounded_up, rounded_down = [], []
        # Exact rationals: Decimal's 28 digits would make equal remainders (1/3 of a nano)
        # compare unequal.
        nano = Fraction(NANO)
        for event_id, weight in weights.items():
            exact = Fraction(abs(amount)) * weight / total
            part = Fraction(abs(got.get(event_id, Decimal(0))))
            assert abs(part - exact) < nano, (unit, event_id)
            floor = (exact // nano) * nano
            (rounded_up if part > floor else rounded_down).append(exact - floor)
        # largest remainder: every part rounded up had a remainder at least as large as any
        # part rounded down
        if rounded_up and rounded_down:
            assert min(rounded_up) >= max(rounded_down), unit
