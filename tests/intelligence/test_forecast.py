"""The forecast: back-tested on synthetic series with a known trend and weekly season (its
interval covers the truth at its nominal rate), and end to end over ingested events."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from intelligence.forecast import LEVEL, forecast_series
from tests.factories import ingest


def test_the_interval_covers_the_truth_at_its_nominal_rate():
    """40 series: trend, weekly season and Gaussian noise; fit 120 days, forecast 30. The 80%
    interval must hold the truth 80% of the time, within 8 points."""
    rng = np.random.default_rng(20260614)
    covered = total = 0
    for _series in range(40):
        slope, season, noise = rng.uniform(0.1, 0.6), rng.uniform(5, 15), rng.uniform(2, 5)
        days = np.arange(150)
        truth = 60 + slope * days + season * np.sin(2 * np.pi * days / 7) \
            + rng.normal(0, noise, days.size)
        found = forecast_series(list(truth[:120]), first_day=date(2026, 1, 1), steps=30)
        lower, upper = np.array(found.lower), np.array(found.upper)
        covered += int(((truth[120:] >= lower) & (truth[120:] <= upper)).sum())
        total += 30
    assert found.method == "ETS(A,Ad,A) weekly"
    rate = covered / total
    assert abs(rate - float(LEVEL) / 100) <= 0.08, rate


def test_months_sum_their_simulated_days_and_what_happened_so_far():
    values = [100.0 + (n % 7) for n in range(60)]
    found = forecast_series(values, first_day=date(2026, 1, 1), steps=40,
                            months=[(date(2026, 3, 1), 10, 500.0), (date(2026, 4, 1), 30, 0.0)])
    assert len(found.mean) == 2
    assert 500 + 10 * 95 < found.mean[0] < 500 + 10 * 110   # 10 days of ~103 on top of 500
    assert 30 * 95 < found.mean[1] < 30 * 110
    assert all(lo <= m <= hi for lo, m, hi in zip(found.lower, found.mean, found.upper,
                                                 strict=True))


def test_a_short_history_is_not_forecast():
    assert forecast_series([1.0] * 6, first_day=date(2026, 1, 1), steps=30) is None


def test_the_endpoint_forecasts_a_scope_and_marks_the_first_loss(store, tenant, api):
    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=42)
    events = []
    for n in range(42):  # COGS climbs 5 cents a day towards revenue's flat $3.00
        at = datetime.combine(start + timedelta(days=n), datetime.min.time(),
                              tzinfo=timezone.utc) + timedelta(hours=12)
        for product, share in (("prod_a", 1), ("prod_b", 2)):
            events.append({"eventId": f"f{n}-{product}", "occurredAt": at,
                           "customerId": "cust_f", "productId": product,
                           "cogsUsd": f"{(0.9 + 0.05 * n) * share:.2f}",
                           "revenueUsd": f"{3 * share:.2f}"})
    ingest(tenant, events, now=datetime.now(timezone.utc))

    body = api.get("/api/v1/analytics/cogs/forecast?horizon=30d&productId=prod_a").json()
    assert body["method"].startswith("ETS(A,Ad,A) weekly")
    assert len(body["forecast"]) == 30 and body["forecast"][0]["date"] == today.isoformat()
    first = body["forecast"][0]
    for name in ("date", "cogsUsd", "revenueUsd", "marginPct", "lower", "upper"):
        assert name in first
    assert first["lower"] <= first["cogsUsd"] <= first["upper"]
    assert 2.9 <= first["revenueUsd"] <= 3.1
    loss = date.fromisoformat(body["firstLossDate"])
    assert today < loss <= today + timedelta(days=15)
    assert len(body["history"]) == 180 and body["history"][-1]["revenueUsd"] == 3

    monthly = api.get("/api/v1/analytics/cogs/forecast?horizon=12m&customerId=cust_f").json()
    assert [p["date"][-2:] for p in monthly["forecast"]] == ["01"] * 12
    assert monthly["forecast"][0]["date"] == today.replace(day=1).isoformat()
    assert monthly["firstLossDate"] is not None

    bad = api.get("/api/v1/analytics/cogs/forecast?horizon=7y")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "horizon"


@pytest.mark.django_db
def test_an_empty_scope_says_why_there_is_no_forecast(tenant, api, store):
    body = api.get("/api/v1/analytics/cogs/forecast?customerId=nobody").json()
    assert body["forecast"] == [] and body["firstLossDate"] is None
    assert body["method"].startswith("NONE")
