"""Margin at every grain on the Cost Breakdown tab: provider and model rows show revenue,
margin and margin % equal to the events' attributed revenue minus their cost; product rows show
their AI-inference slice."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from django.test import Client

from tests.console.conftest import console_user
from tests.factories import attribute, ingest

pytestmark = pytest.mark.django_db


def _cells(body: str, table: str, key_attr: str) -> dict[str, dict[str, str]]:
    section = body.split(f'data-table="{table}"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for key, row in re.findall(rf'<tr {key_attr}="([^"]*)">(.*?)</tr>', section, re.S):
        rows[key] = dict(re.findall(r'data-col="([^"]+)">([^<]*)<', row))
    return rows


def test_provider_rows_carry_revenue_and_margin(store, tenant):
    at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)
    events = [{"eventId": "e1", "occurredAt": at, "customerId": "c", "productId": "p",
               "provider": "OpenAI", "model": "gpt-4o", "aiCogsUsd": "0.40"},
              {"eventId": "e2", "occurredAt": at, "customerId": "c", "productId": "p",
               "provider": "Anthropic", "model": "claude", "aiCogsUsd": "0.10",
               "infraCogsUsd": "0.10"}]
    ingest(tenant, events)
    attribute(tenant, events[0], "1.00")
    attribute(tenant, events[1], "0.10")
    client = Client()
    client.force_login(console_user(tenant))
    body = client.get("/console/cogs/costs/", {"period": "7d"}).content.decode()
    providers = _cells(body, "providers", "data-provider")
    assert providers["OpenAI"] == {"revenue": "$1.00", "margin": "$0.60",
                                   "margin-pct": "60.00%", "expected-margin-pct": "60.00%"}
    assert providers["Anthropic"]["margin"] == "−$0.10"
    assert providers["Anthropic"]["margin-pct"] == "-100.00%"
    assert 'data-col="ai">$0.50<' in body  # the product's AI-inference slice
