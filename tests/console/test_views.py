"""Each console tab, rendered by the Django test client, against the API's own figures."""
from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.test import Client

from aforo.eventstore import EventStoreUnavailable
from cogs import queries
from cogs.services import cogs_settings_update
from tests.conftest import api_client
from tests.console.conftest import XSS, console_user

pytestmark = pytest.mark.django_db

TABS = {"overview": "/console/", "pnl": "/console/cogs/pnl/",
        "breakdown": "/console/cogs/costs/", "transactions": "/console/cogs/transactions/",
        "budgets": "/console/cogs/budgets/"}


def page(client: Client, path: str, status: int = 200, **params) -> str:
    response = client.get(path, params)
    assert response.status_code == status, response.content.decode()[:2000]
    return response.content.decode()


def kpi_values(body: str) -> dict[str, str]:
    return dict(re.findall(r'data-kpi="([^"]+)">\s*<span class="kpi-title">[^<]*</span>\s*'
                           r'<span class="kpi-value[^"]*" data-value="([^"]*)"', body))


def figures_in(body: str) -> dict[str, dict]:
    found = re.findall(r'<script id="(fig-[^"]+)" type="application/json">(.*?)</script>',
                       body, re.S)
    return {name: json.loads(text) for name, text in found}


def test_every_tab_requires_login(db):
    client = Client()
    for path in TABS.values():
        response = client.get(path)
        assert response.status_code == 302 and "/console/login/" in response["Location"]


def test_overview_kpis_equal_the_api_for_each_period(seeded, tenant, console):
    api = api_client(tenant)
    for preset, days in (("7d", 7), ("30d", 30), ("90d", 90)):
        body = page(console, "/console/", period=preset)
        today = datetime.now(timezone.utc).date()
        expected = api.get("/api/v1/analytics/cogs/dashboard", {
            "from": (today - timedelta(days=days - 1)).isoformat(),
            "to": today.isoformat()}).json()
        kpis = kpi_values(body)
        assert Decimal(kpis["total-cogs"]) == Decimal(str(expected["totalCogsUsd"]))
        assert Decimal(kpis["revenue"]) == Decimal(str(expected["revenueUsd"]))
        assert round(Decimal(kpis["gross-margin"]), 2) == Decimal(str(expected["grossMarginPct"]))
        assert round(Decimal(kpis["cost-per-event"]), 6) == \
            Decimal(str(expected["costPerEventUsd"]))
        assert Decimal(kpis["ai-spend"]) == Decimal(str(expected["aiModelSpendUsd"]))
        assert int(kpis["active-products"]) == expected["activeProducts"]
    seven = kpi_values(page(console, "/console/", period="7d"))
    thirty = kpi_values(page(console, "/console/", period="30d"))
    assert Decimal(seven["total-cogs"]) == Decimal("1.150004")
    assert Decimal(thirty["total-cogs"]) == Decimal("2.450004")
    assert Decimal(seven["revenue"]) == Decimal("1.35")


def test_overview_has_trend_donut_products_and_anomalies(seeded, console):
    body = page(console, "/console/", period="7d")
    figs = figures_in(body)
    trend = figs["fig-trend"]
    assert [t["name"] for t in trend["data"]] == ["Revenue", "COGS", "Margin %"]
    assert len(trend["data"][0]["x"]) == 7  # every day of the period, zero where quiet
    donut = figs["fig-providers"]["data"][0]
    assert donut["type"] == "pie" and set(donut["labels"]) == {"Anthropic", "OpenAI", "Google"}
    assert 'data-table="products"' in body and "prod_translation" in body
    anomalies = body.split('data-table="anomalies"')[1].split("</table>")[0]
    assert "tr-spike" in anomalies and "tr-3<" not in anomalies
    assert "Cost anomalies today" in body
    assert "Revenue still settling" in body
    assert '<script src="/static/vendor/plotly.min.js">' in body


def test_period_lives_in_the_url_and_every_tab_link_keeps_it(seeded, console):
    body = page(console, "/console/cogs/pnl/", period="7d")
    for path in TABS.values():
        assert f'href="{path}?period=7d"' in body
    custom = page(console, "/console/", **{"from": "2020-01-01", "to": "2020-01-31"})
    assert f'href="{TABS["pnl"]}?from=2020-01-01&amp;to=2020-01-31"' in custom
    assert 'data-empty="overview"' in custom  # nothing metered then
    assert "Revenue still settling" not in custom  # a closed period


def test_a_bad_period_is_explained_in_the_page(seeded, console):
    body = page(console, "/console/", 400, **{"from": "2026-06-14", "to": "2026-06-01"})
    assert 'role="alert"' in body and "on or before" in body
    body = page(console, "/console/cogs/costs/", 400, period="12y")
    assert "7D, 30D, 90D" in body
    body = page(console, "/console/cogs/transactions/", 400, page="-1")
    assert "“page” must be at least 0" in body


def test_pnl_unit_economics_tags_and_sorting(seeded, tenant, console):
    body = page(console, "/console/cogs/pnl/", period="7d")
    assert "Set fixed costs per month" in body
    rows = re.findall(r'<tr data-customer="([^"]+)">.*?class="badge tag-(\w+)"', body, re.S)
    tags = {html.unescape(cid): tag for cid, tag in rows}
    assert tags == {"cust_acme": "STANDARD", "cust_loss": "UNPROFITABLE",
                    "cust_tiny": "UNPROFITABLE", XSS: "HIGH_VALUE"}
    by_margin_asc = page(console, "/console/cogs/pnl/", period="7d", sort="margin", dir="asc")
    order = [html.unescape(c) for c in re.findall(r'<tr data-customer="([^"]+)"', by_margin_asc)]
    assert order == ["cust_loss", "cust_tiny", XSS, "cust_acme"]
    assert 'aria-sort="ascending"' in by_margin_asc
    cogs_settings_update(tenant=tenant, fixed_costs_per_month_usd=Decimal("100"))
    body = page(console, "/console/cogs/pnl/", period="7d")
    # avg margin per event = (1.35 − 1.150004) / 30 → 100 / that, rounded up
    assert "15,001 events" in body
    assert 'id="fig-product-margin"' in body


def test_cost_breakdown_shows_unclassified_models_and_tokens(seeded, console):
    body = page(console, "/console/cogs/costs/", period="7d")
    composition = figures_in(body)["fig-composition"]
    assert [t["name"] for t in composition["data"]] == [
        "AI Models", "Infrastructure", "Gateway Fees", "Unclassified"]
    assert composition["data"][3]["x"] == [0.2]
    assert 'data-segment="unclassified"' in body and "$0.20" in body
    models = body.split('data-table="models"')[1].split("</table>")[0]
    assert "claude-sonnet-4-6" in models and "unpriced" in models  # carried costs, no rate card
    assert 'data-fact="total-tokens">16,450<' in body
    for name in ("fig-providers", "fig-products", "fig-customers"):
        assert name in figures_in(body)


def test_transactions_filters_pages_and_the_split(seeded, console):
    body = page(console, "/console/cogs/transactions/", period="7d")
    assert body.count('class="tx"') == 25 and "of <span data-total>30</span>" in body
    assert 'rel="next"' in body
    second = page(console, "/console/cogs/transactions/", period="7d", page="1")
    assert second.count('class="tx"') == 5
    agent = page(console, "/console/cogs/transactions/", period="7d", productId="prod_agent",
                 provider="OpenAI")
    assert agent.count('class="tx"') == 2
    detail = agent.split('data-event-id="ag-1"')[1].split("</dl>")[0]
    for split, amount in (("ai", "$0.14"), ("infra", "$0.03"), ("fee", "$0.01")):
        assert f'data-split="{split}">{amount}<' in detail
    assert 'id="live-switch"' in body and "disabled" not in body.split('id="live-switch"')[1][:60]
    none = page(console, "/console/cogs/transactions/", period="7d", customerId="nobody")
    assert "No events match these filters" in none


def test_tiny_amounts_keep_their_digits(seeded, console):
    body = page(console, "/console/cogs/transactions/", period="7d", customerId="cust_tiny")
    assert "$0.000004" in body
    pnl = page(console, "/console/cogs/pnl/", period="7d")
    assert "$0.000004" in pnl and "−$0.000004" in pnl


def test_user_supplied_names_are_escaped_everywhere(seeded, console):
    for tab, path in TABS.items():
        body = page(console, path, period="7d")
        assert XSS not in body, tab
    # (the transactions tab filtered to that customer: before 05:00 UTC today's 26 seeded
    # events are newer than its event and fill the first page)
    for path, extra in ((TABS["pnl"], {}), (TABS["breakdown"], {}),
                        (TABS["transactions"], {"customerId": XSS})):
        assert html.escape(XSS, quote=False) in page(console, path, period="7d", **extra)
    # Plotly reads a few HTML tags in labels; they reach it escaped, so it prints them.
    customers = figures_in(page(console, TABS["breakdown"], period="7d"))["fig-customers"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in customers["data"][0]["y"]


def test_a_tenant_without_data_gets_empty_states(store, tenant, console):
    assert 'data-empty="overview"' in page(console, TABS["overview"])
    assert 'data-empty="pnl"' in page(console, TABS["pnl"])
    assert 'data-empty="breakdown"' in page(console, TABS["breakdown"])
    assert 'data-empty="transactions"' in page(console, TABS["transactions"])
    assert 'data-empty="budgets"' in page(console, TABS["budgets"])


def test_another_tenants_events_never_show(seeded, other_tenant, db):
    stranger = Client()
    stranger.force_login(console_user(other_tenant, "olga"))
    body = page(stranger, "/console/cogs/transactions/", period="90d")
    assert "tr-spike" not in body and 'data-empty="transactions"' in body


def test_an_unavailable_event_store_is_explained_in_the_page(monkeypatch, tenant, console):
    def down(*args, **kwargs):
        raise EventStoreUnavailable("ClickHouse refused the connection.")

    monkeypatch.setattr(queries, "overview", down)
    body = page(console, "/console/", 503)
    assert 'role="alert"' in body and "event store is unavailable" in body
    assert "plotly.min.js" not in body


def test_a_failed_anomaly_scan_leaves_the_rest_of_the_overview(monkeypatch, seeded, console):
    from aforo.eventstore import EventStoreError

    def broken(*args, **kwargs):
        raise EventStoreError("Max query size exceeded")

    monkeypatch.setattr(queries, "anomalies", broken)
    body = page(console, "/console/", period="7d")
    assert "The anomaly scan failed" in body and 'data-kpi="total-cogs"' in body
    assert "fig-trend" in body


def test_plotly_js_is_served_from_our_static_files(db):
    response = Client().get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert b"plotly.js" in b"".join(response.streaming_content)[:2000]


def test_tenant_switch_returns_to_the_same_tab_and_period(store, tenant, other_tenant, member):
    from aforo.tenancy import membership_set

    membership_set(tenant=other_tenant, user=member, role="VIEWER")
    client = Client()
    client.force_login(member)
    response = client.post("/console/tenant/", {"tenant": other_tenant.slug,
                                                "next": "/console/cogs/pnl/?period=7d"})
    assert response.status_code == 302 and response["Location"] == "/console/cogs/pnl/?period=7d"
    assert f"<strong>{other_tenant.name}</strong>" in page(client, "/console/cogs/pnl/")
    evil = client.post("/console/tenant/", {"tenant": tenant.slug, "next": "https://evil.test/"})
    assert evil["Location"] == "/console/"


def test_a_user_without_a_tenant_is_told_so(db):
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.create_user("nomad"))
    for path in TABS.values():
        assert "not a member of any tenant" in page(client, path)


def test_overview_and_pnl_show_settling_and_expected_revenue(store, tenant, console):
    """A customer whose events carry their price: the Revenue card adds what is settling, the
    Expected Margin card counts it, the banner says how much, P&L has an expected column."""
    from tests.factories import ingest

    at = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)
    ingest(tenant, [{"eventId": f"c{i}", "occurredAt": at.isoformat(), "customerId": "cust_c",
                     "productId": "prod_a", "cogsUsd": "0.25", "revenueUsd": "1.00"}
                    for i in range(4)])
    body = page(console, "/console/", period="7d")
    kpis = kpi_values(body)
    assert (Decimal(kpis["revenue"]), Decimal(kpis["expected-margin"])) == (0, 75)
    assert "+ $4.00 settling (carried $4.00)" in html.unescape(body)
    assert 'data-settling="4' in body and "Revenue still settling: $4.00" in body
    pnl = page(console, "/console/cogs/pnl/", period="7d")
    assert re.search(r'data-customer="cust_c".*?data-expected-margin="3(\.0*)?"', pnl, re.S)


def test_the_guard_page_shows_each_customers_revenue_sources(store, tenant, console):
    from margin_guard.models import GuardPolicy
    from margin_guard.services import guard_evaluate
    from tests.factories import ingest

    GuardPolicy.objects.create(tenant=tenant, name="Floors", scope="TENANT", mode="DRY_RUN",
                               min_events=1)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ingest(tenant, [{"eventId": "c1", "occurredAt": now.isoformat(), "customerId": "cust_c",
                     "productId": "prod_a", "cogsUsd": "0.25", "revenueUsd": "1.00"},
                    {"eventId": "u1", "occurredAt": now.isoformat(), "customerId": "cust_c",
                     "productId": "prod_a", "cogsUsd": "0.25"}])
    guard_evaluate(tenant=tenant, customer_id="cust_c", product_id="prod_a", now=now)
    body = page(console, "/console/margin-guard/")
    row = re.search(r'data-guard-customer="cust_c".*?</tr>', body, re.S).group(0)
    assert "carried $1.00" in row and "revenue unknown for 1 of 2 events" in row
