"""The link every notification carries opens the alert in the console."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.conf import settings

from budgets import services
from budgets.notify import console_url
from tests.console.conftest import console_user
from tests.factories import ingest

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.mark.django_db
def test_the_alert_link_opens_its_row_in_budgets_and_alerts(store, tenant, client):
    ingest(tenant, [{"eventId": "e", "occurredAt": NOW - timedelta(minutes=5),
                     "customerId": "c", "productId": "p", "cogsUsd": "3"}], now=NOW)
    services.alert_rule_create(tenant=tenant, name="Spend", metric="COST", comparison="GT",
                               threshold=Decimal(1), window="1h", channel="EMAIL",
                               destination="ops@example.com")
    (alert,) = services.alerts_evaluate(now=NOW, tenant=tenant)
    url = console_url(alert)
    assert url.startswith(settings.AFORO_PUBLIC_URL)
    client.force_login(console_user(tenant))
    page = client.get(url.removeprefix(settings.AFORO_PUBLIC_URL.rstrip("/")).split("#")[0])
    assert page.status_code == 200
    assert f'id="alert-{alert.pk}"'.encode() in page.content
    assert b'aria-current="true"' in page.content
    assert url.endswith(f"#alert-{alert.pk}")
