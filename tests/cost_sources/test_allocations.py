"""Allocations: a source's cost spread onto the period's events by events, tokens or COGS,
into a bucket, summing to exactly the amount; reversed exactly, once."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aforo import eventstore
from aforo.periods import Period
from cogs.queries import allocated_cogs, overview, products_breakdown
from cost_sources.allocations import largest_remainder
from cost_sources.queries import reconciliation
from tests.conftest import api_client
from tests.factories import (
    attribute,
    cost_source,
    import_costs,
    ingest,
    openai_costs_page,
    write_page,
)

DAY = datetime(2026, 10, 10, tzinfo=timezone.utc)
PERIOD = Period(first=date(2026, 10, 10), last=date(2026, 10, 12))
PRODUCTS = [f"prod_{n}" for n in range(1, 8)]


# --- the split ----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(amount=st.integers(min_value=1, max_value=10**18),
       weights=st.lists(st.integers(min_value=1, max_value=10**15), min_size=1, max_size=60))
def test_largest_remainder_sums_exactly_and_each_share_is_within_one_of_its_exact_part(
        amount, weights):
    shares = largest_remainder(amount, weights)
    assert sum(shares) == amount
    total = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        floor = amount * weight // total
        assert share in (floor, floor + 1)
    # the units left over go to the largest remainders: nobody with a smaller remainder got
    # one while somebody with a larger one did not
    remainders = [amount * w % total for w in weights]
    got = [r for r, s, w in zip(remainders, shares, weights, strict=True)
           if s > amount * w // total]
    missed = [r for r, s, w in zip(remainders, shares, weights, strict=True)
              if s == amount * w // total]
    if got and missed:
        assert min(got) >= max(missed)


def test_largest_remainder_by_hand():
    # $1.00 over three equal events: 0.333333334 to the first, 0.333333333 to the others
    assert largest_remainder(10**9, [1, 1, 1]) == [333_333_334, 333_333_333, 333_333_333]
    # 10 nanos by 1:2:3 = 1.667, 3.333, 5 -> 2, 3, 5
    assert largest_remainder(10, [1, 2, 3]) == [2, 3, 5]


# --- seeded tenant --------------------------------------------------------------------------

def _events() -> list[dict]:
    """21 events over 7 products and three days, each with its own cost and tokens."""
    out = []
    for p, product in enumerate(PRODUCTS):
        for n in range(3):
            out.append({
                "eventId": f"e{p}{n}", "occurredAt": DAY + timedelta(days=n, hours=p),
                "customerId": f"cust_{n}", "productId": product, "provider": "openai",
                "model": "gpt-4o", "inputTokens": 100 * (p + 1), "outputTokens": 10 * (n + 1),
                "aiCogsUsd": str(Decimal("0.013") * (p + 1) + Decimal("0.0007") * n)})
    return out


@pytest.fixture
def seeded(tenant, store):
    ingest(tenant, _events())
    return tenant, cost_source(tenant, "AWS_CUR", "aws")


def _allocated(tenant) -> dict[str, Decimal]:
    rows = eventstore.tenant_query(
        tenant.slug,
        "SELECT event_id, sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd "
        "+ unclassified_cogs_usd) AS c FROM ledger WHERE tenant_id = %(tenant_id)s "
        "AND entry_type = 'COST' AND allocation_id != '' GROUP BY event_id")
    return {r["event_id"]: r["c"] for r in rows if r["c"]}


def _per_event_cogs(tenant) -> Decimal:
    rows = eventstore.tenant_query(
        tenant.slug,
        "SELECT event_id, sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd "
        "+ unclassified_cogs_usd) AS c FROM ledger WHERE tenant_id = %(tenant_id)s "
        "AND entry_type = 'COST' GROUP BY event_id")
    return sum((r["c"] for r in rows), Decimal(0))


def _figures(tenant, api):
    """Every figure an allocation may move: the headline, per product, the API's answers."""
    head = overview(tenant, PERIOD).totals
    products = {t.key: t.cogs_usd for t in products_breakdown(tenant, PERIOD)}
    query = f"from={PERIOD.first}&to={PERIOD.last}"
    return {
        "headline": (head.cogs_usd, head.infra_cogs_usd, head.ai_cogs_usd),
        "products": products,
        "allocated": allocated_cogs(tenant, PERIOD),
        "dashboard": api.get(f"/api/v1/analytics/cogs/dashboard?{query}").json(),
        "composition": api.get(
            f"/api/v1/analytics/cogs/dashboard/cost-composition?{query}").json(),
        "byProduct": api.get(f"/api/v1/analytics/cogs/dashboard/by-product?{query}").json(),
    }


def test_a_thousand_dollars_over_seven_products_sums_exactly_and_reverses_to_the_cent(
        seeded, api):
    tenant, source = seeded
    before = _figures(tenant, api)
    response = api.post("/api/v1/cost-sources/allocations", {
        "sourceId": source.pk, "from": "2026-10-10", "to": "2026-10-12", "by": "COGS",
        "bucket": "INFRA", "amountUsd": "1000.00", "description": "AWS October"},
        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["events"], body["amountUsd"], body["by"], body["bucket"]) == (
        "APPLIED", 21, 1000, "COGS", "INFRA")
    shares = _allocated(tenant)
    assert len(shares) == 21 and sum(shares.values()) == Decimal("1000")
    # by COGS: each share is its exact part of $1,000 within one nanodollar
    metered = {e["eventId"]: Decimal(e["aiCogsUsd"]) for e in _events()}
    total = sum(metered.values())
    for event_id, share in shares.items():
        assert abs(share - Decimal(1000) * metered[event_id] / total) < Decimal("1e-9")

    after = _figures(tenant, api)
    assert after["headline"][0] == before["headline"][0] + 1000
    assert after["headline"][1] == before["headline"][1] + 1000  # the infra bucket
    assert after["headline"][2] == before["headline"][2]
    # per event, per product and the headline reconcile
    assert _per_event_cogs(tenant) == after["headline"][0] == sum(after["products"].values())
    assert (Decimal(str(after["composition"]["infraCogsUsd"]))
            == Decimal(str(before["composition"]["infraCogsUsd"])) + 1000)
    assert (before["allocated"], after["allocated"]) == (0, 1000)  # the console's heading
    assert (Decimal(str(after["dashboard"]["totalCogsUsd"]))
            == Decimal(str(before["dashboard"]["totalCogsUsd"])) + 1000)
    assert sum(Decimal(str(r["cogsUsd"])) for r in after["byProduct"]) == Decimal(
        str(after["dashboard"]["totalCogsUsd"]))

    listed = api.get("/api/v1/cost-sources/allocations").json()
    assert [a["id"] for a in listed["content"]] == [body["id"]]

    reversed_ = api.post(f"/api/v1/cost-sources/allocations/{body['id']}/reverse")
    assert reversed_.status_code == 200 and reversed_.json()["status"] == "REVERSED"
    assert _allocated(tenant) == {}
    assert _figures(tenant, api) == before
    again = api.post(f"/api/v1/cost-sources/allocations/{body['id']}/reverse")
    assert again.status_code == 409
    assert again.json()["error"]["field"] == "id"
    assert "reversed already" in again.json()["error"]["message"]
    assert _figures(tenant, api) == before


def test_by_events_of_one_product_by_hand(seeded):
    from cost_sources.allocations import allocation_create

    tenant, source = seeded
    allocation_create(tenant=tenant, source=source, first=PERIOD.first, last=PERIOD.last,
                      by="EVENTS", bucket="FEE", amount=Decimal("1.00"),
                      product_ids=["prod_3"])
    assert _allocated(tenant) == {"e20": Decimal("0.333333334"), "e21": Decimal("0.333333333"),
                                  "e22": Decimal("0.333333333")}
    fee = eventstore.tenant_query(
        tenant.slug, "SELECT sum(fee_cogs_usd) AS f FROM ledger WHERE tenant_id = %(tenant_id)s")
    assert fee[0]["f"] == Decimal("1.00")


def test_by_tokens_by_hand(seeded):
    from cost_sources.allocations import allocation_create

    tenant, source = seeded
    # prod_1's events: 100+10, 100+20, 100+30 tokens = 360; $36 -> 11, 12, 13
    allocation_create(tenant=tenant, source=source, first=PERIOD.first, last=PERIOD.last,
                      by="TOKENS", bucket="UNCLASSIFIED", amount=Decimal("36"),
                      product_ids=["prod_1"])
    assert _allocated(tenant) == {"e00": Decimal("11"), "e01": Decimal("12"),
                                  "e02": Decimal("13")}


def test_the_default_amount_is_what_the_source_billed(tenant, store, tmp_path):
    ingest(tenant, _events())
    page = openai_costs_page([(DAY, [("gpt-4o, input", "7.25")])])
    path = tmp_path / "costs.json"
    write_page(path, page)
    source = cost_source(tenant, "OPENAI_COSTS", "openai")
    import_costs(source, path)
    from cost_sources.allocations import allocation_create

    allocation = allocation_create(tenant=tenant, source=source, first=PERIOD.first,
                                   last=PERIOD.last, by="EVENTS", bucket="AI")
    assert allocation.amount_usd == Decimal("7.25")
    assert sum(_allocated(tenant).values()) == Decimal("7.25")


# --- what must not undo or double it ----------------------------------------------------------

def test_repricing_settlement_and_the_detectors_leave_the_allocation_alone(tenant, store):
    from cost_sources.allocations import allocation_create, allocation_reverse
    from ingestion import prices
    from ingestion.services import events_reprice

    prices.model_price_create(tenant=tenant, provider="openai", model="gpt-4o",
                              effective_from=DAY - timedelta(days=30),
                              input_per_1m=Decimal("1"), output_per_1m=Decimal("2"))
    events = [{"eventId": f"r{n}", "occurredAt": DAY + timedelta(hours=n), "customerId": "c",
               "productId": "p", "provider": "openai", "model": "gpt-4o",
               "inputTokens": 1000, "outputTokens": 500} for n in range(4)]
    ingest(tenant, events)
    attribute(tenant, events[0], "5.00")  # r0 is settled
    hourly = _hourly(tenant)
    source = cost_source(tenant, "AWS_CUR", "aws")
    allocation = allocation_create(tenant=tenant, source=source, first=PERIOD.first,
                                   last=PERIOD.last, by="EVENTS", bucket="AI",
                                   amount=Decimal("4"))
    assert _allocated(tenant) == dict.fromkeys(["r0", "r1", "r2", "r3"], Decimal("1"))
    # the detectors' rollup and the anomalies' candidates hold no allocation
    assert _hourly(tenant) == hourly
    assert _event_costs(tenant) == Decimal("0.008")  # 4 x (1000 x 1 + 500 x 2) / 1M
    # a settled event's allocated cost does not count as settling; the others' does
    assert _settling(tenant) == {"r1": Decimal("1.002"), "r2": Decimal("1.002"),
                                 "r3": Decimal("1.002")}
    # repricing with the same card finds nothing to correct; a new price corrects the
    # metered cost only
    window = {"start": DAY - timedelta(days=1), "end": DAY + timedelta(days=3)}
    assert events_reprice(tenant=tenant, **window).events_corrected == 0
    prices.model_price_create(tenant=tenant, provider="openai", model="gpt-4o",
                              effective_from=DAY - timedelta(days=10),
                              input_per_1m=Decimal("2"), output_per_1m=Decimal("2"))
    report = events_reprice(tenant=tenant, **window)
    assert (report.events_corrected, report.ai_delta_usd) == (4, Decimal("0.004"))
    hourly = _hourly(tenant)  # the repricing moved it; the reversal will not
    assert _allocated(tenant) == dict.fromkeys(["r0", "r1", "r2", "r3"], Decimal("1"))
    assert _settling(tenant) == {"r1": Decimal("1.003"), "r2": Decimal("1.003"),
                                 "r3": Decimal("1.003")}
    # a later settlement of r1 cancels its allocated cost as settling too, once
    attribute(tenant, events[1], "5.00")
    assert _settling(tenant) == {"r2": Decimal("1.003"), "r3": Decimal("1.003")}
    allocation_reverse(allocation=allocation)
    assert _allocated(tenant) == {}
    assert _settling(tenant) == {"r2": Decimal("0.003"), "r3": Decimal("0.003")}
    assert _hourly(tenant) == hourly


def _hourly(tenant) -> list[tuple]:
    return [tuple(r.values()) for r in eventstore.tenant_query(
        tenant.slug, "SELECT hour, toString(sum(cogs)) AS c, sum(events) AS n "
        "FROM ledger_hourly WHERE tenant_id = %(tenant_id)s GROUP BY hour ORDER BY hour")]


def _event_costs(tenant) -> Decimal:
    return eventstore.tenant_query(
        tenant.slug, "SELECT sum(cogs) AS c FROM ledger_event_costs "
        "WHERE tenant_id = %(tenant_id)s AND entry_kind = 'ORIGINAL'")[0]["c"]


def _settling(tenant) -> dict[str, Decimal]:
    """Per event, the COGS its COST and SETTLE entries net to (what still counts as
    settling)."""
    rows = eventstore.tenant_query(
        tenant.slug, "SELECT event_id, sum(ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + "
        "unclassified_cogs_usd) AS c FROM ledger WHERE tenant_id = %(tenant_id)s "
        "AND entry_type IN ('COST', 'SETTLE') GROUP BY event_id")
    return {r["event_id"]: r["c"] for r in rows if r["c"]}


def test_reconciliation_counts_an_allocated_gap_as_metered(tenant, store, tmp_path):
    """Allocating a provider's gap into the AI bucket closes it (the COGS now matches the bill);
    reversing it reopens it, exactly."""
    page = openai_costs_page([(DAY, [("gpt-4o, input", "100.00")])])
    path = tmp_path / "costs.json"
    write_page(path, page)
    source = cost_source(tenant, "OPENAI_COSTS", "openai")
    import_costs(source, path)
    ingest(tenant, [{"eventId": f"g{n}", "occurredAt": DAY + timedelta(minutes=n),
                     "customerId": "c", "productId": "p", "provider": "openai",
                     "model": "gpt-4o", "aiCogsUsd": "1.00"} for n in range(97)])
    from cost_sources.allocations import allocation_create, allocation_reverse

    def status():
        rows = reconciliation(tenant.slug, first=DAY.date(), last=DAY.date(), by="provider",
                              tolerance_pct=Decimal("1"))
        return [(r.metered_usd, r.gap_usd, r.status) for r in rows]

    assert status() == [(Decimal("97"), Decimal("3"), "UNDER_METERED")]
    allocation = allocation_create(tenant=tenant, source=source, first=DAY.date(),
                                   last=DAY.date(), by="COGS", bucket="AI",
                                   amount=Decimal("3"))
    assert status() == [(Decimal("100"), Decimal("0"), "MATCHED")]
    allocation_reverse(allocation=allocation)
    assert status() == [(Decimal("97"), Decimal("3"), "UNDER_METERED")]


# --- the API's refusals ---------------------------------------------------------------------

def test_refusals_name_the_field_and_roles_are_kept(seeded, api, other_tenant):
    tenant, source = seeded
    good = {"sourceId": source.pk, "from": "2026-10-10", "to": "2026-10-12", "by": "EVENTS",
            "bucket": "INFRA", "amountUsd": "10"}

    def refused(change: dict, status: int = 400) -> str | None:
        response = api.post("/api/v1/cost-sources/allocations", {**good, **change},
                            format="json")
        assert response.status_code == status, response.content
        return response.json()["error"]["field"]

    assert refused({"by": "REVENUE"}) == "by"
    assert refused({"bucket": "MARKETING"}) == "bucket"
    assert refused({"amountUsd": "0"}) == "amountUsd"
    assert refused({"amountUsd": "0.0000000001"}) == "amountUsd"
    assert refused({"from": "2026-10-13"}) == "from"
    assert refused({"to": "10/12/2026"}) == "to"
    assert refused({"productIds": ["prod_nobody"]}) == "productIds"
    assert refused({"from": "2025-01-01", "to": "2025-01-31"}) == "from"
    other = cost_source(other_tenant, "AWS_CUR", "theirs")
    assert refused({"sourceId": other.pk}, 404) == "id"
    assert api.post("/api/v1/cost-sources/allocations/999999/reverse").status_code == 404
    assert _allocated(tenant) == {}

    viewer = api_client(tenant, "VIEWER")
    assert viewer.post("/api/v1/cost-sources/allocations", good,
                       format="json").status_code == 403
    assert viewer.get("/api/v1/cost-sources/allocations").status_code == 200
    billing = api_client(tenant, "BILLING_ADMIN")
    created = billing.post("/api/v1/cost-sources/allocations", good, format="json")
    assert created.status_code == 201
    assert viewer.post(f"/api/v1/cost-sources/allocations/{created.json()['id']}/reverse"
                       ).status_code == 403
    # another tenant sees none of it
    assert api_client(other_tenant).get(
        "/api/v1/cost-sources/allocations").json()["content"] == []
    assert api_client(other_tenant).post(
        f"/api/v1/cost-sources/allocations/{created.json()['id']}/reverse").status_code == 404
    # a source whose cost was allocated cannot be deleted
    assert api.delete(f"/api/v1/cost-sources/{source.pk}").status_code == 409


def test_the_same_allocation_twice_is_two_allocations_each_exact(seeded):
    """Two allocations are two (each reversible on its own); no entry id collides."""
    from cost_sources.allocations import allocation_create, allocation_reverse

    tenant, source = seeded
    first = allocation_create(tenant=tenant, source=source, first=PERIOD.first,
                              last=PERIOD.last, by="EVENTS", bucket="INFRA",
                              amount=Decimal("2.1"))
    allocation_create(tenant=tenant, source=source, first=PERIOD.first, last=PERIOD.last,
                      by="EVENTS", bucket="INFRA", amount=Decimal("2.1"))
    assert sum(_allocated(tenant).values()) == Decimal("4.2")
    allocation_reverse(allocation=first)
    assert sum(_allocated(tenant).values()) == Decimal("2.1")
    assert all(v == Decimal("0.1") for v in _allocated(tenant).values())


def test_anomalies_judge_what_events_metered_not_what_was_allocated(tenant, store, api):
    """A flat allocation would lift every event of a group to about the same cost and hide its
    spike; anomalies compare metered cost with the group's metered average, so the spike, its
    ratio and the average stay as they were."""
    from cost_sources.allocations import allocation_create

    events = [{"eventId": f"n{n:02d}", "occurredAt": DAY + timedelta(minutes=n),
               "customerId": "c", "productId": "p", "provider": "openai", "model": "m",
               "aiCogsUsd": "0.01"} for n in range(24)]
    events.append({**events[0], "eventId": "spike", "aiCogsUsd": "0.26"})
    ingest(tenant, events)
    assert api.patch("/api/v1/analytics/cogs/settings", {"anomalyMultiplier": "3"},
                     format="json").status_code == 200
    url = f"/api/v1/analytics/cogs/dashboard/anomalies?from={PERIOD.first}&to={PERIOD.last}"

    def seen():
        return [(r["eventId"], r["averageCogsUsd"], r["ratio"], r["groupEventCount"])
                for r in api.get(url).json()["content"]]

    # 0.50 over 25 events: average 0.02, the spike 13x
    assert seen() == [("spike", 0.02, 13, 25)]
    allocation_create(tenant=tenant, source=cost_source(tenant, "AWS_CUR", "aws"),
                      first=PERIOD.first, last=PERIOD.last, by="EVENTS", bucket="INFRA",
                      amount=Decimal("100"))
    assert seen() == [("spike", 0.02, 13, 25)]
    row = api.get(url).json()["content"][0]
    assert row["cogsUsd"] == 4.26  # the transaction shows its whole cost, allocation included
