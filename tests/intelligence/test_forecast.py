"""The forecast: back-tested on synthetic series with a known trend and weekly season (its
interval covers the truth at its nominal rate), and end to end over ingested events."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from aforo.renderers import ExactJSONRenderer
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


def _history_events(n_days: int) -> list[dict]:
    today = datetime.now(timezone.utc).date()
    start = today - timedelta(days=n_days)
    events = []
    for n in range(n_days):  # a weekly swing on a slow climb, two products, two customers
        at = datetime.combine(start + timedelta(days=n), datetime.min.time(),
                              tzinfo=timezone.utc) + timedelta(hours=10)
        for customer, product, share in (("cust_s", "prod_a", 1), ("cust_t", "prod_b", 3)):
            events.append({"eventId": f"s{n}-{product}", "occurredAt": at,
                           "customerId": customer, "productId": product,
                           "cogsUsd": f"{(1 + 0.02 * n + 0.3 * (n % 7 == 5)) * share:.2f}",
                           "revenueUsd": f"{(2.5 + 0.01 * n) * share:.2f}"})
    return events


def test_a_served_fit_equals_a_fresh_one_and_goes_stale(store, tenant, api):
    from intelligence.api import forecast_json
    from intelligence.forecast import FRESH_FOR, forecast_serve, forecasts_refresh, scope_forecast
    from intelligence.models import ForecastFit

    ingest(tenant, _history_events(40), now=datetime.now(timezone.utc))
    now = datetime.now(timezone.utc)
    asked = api.get("/api/v1/analytics/cogs/forecast?horizon=90d&customerId=cust_s").json()
    # The job fits the tenant, each product with history and the scope just asked for.
    assert forecasts_refresh(tenant, now=now) == 3 * 4
    scopes = set(ForecastFit.objects.filter(tenant=tenant)
                 .values_list("product_id", "customer_id", "horizon"))
    assert {(p, c) for p, c, _h in scopes} == {("", ""), ("prod_a", ""), ("prod_b", ""),
                                                ("", "cust_s")}
    for params, scope in (({"horizon": "30d"}, {}),
                          ({"horizon": "12m", "productId": "prod_b"}, {"product_id": "prod_b"}),
                          ({"horizon": "90d", "customerId": "cust_s"},
                           {"customer_id": "cust_s"})):
        served = api.get("/api/v1/analytics/cogs/forecast", params).json()
        fresh = forecast_json(scope_forecast(tenant.slug, time_zone=tenant.time_zone,
                                             horizon=params["horizon"], **scope))
        # the same numbers to the last digit, whether served from the job's fit or fitted now
        assert served["forecast"] and served == api.get("/api/v1/analytics/cogs/forecast",
                                                        params).json()
        assert ExactJSONRenderer().render(fresh) == ExactJSONRenderer().render(
            forecast_json(forecast_serve(tenant, horizon=params["horizon"], **scope)))
        assert json.loads(ExactJSONRenderer().render(fresh)) == served
    assert asked == api.get("/api/v1/analytics/cogs/forecast?horizon=90d&customerId=cust_s"
                            ).json()

    # Served while fresh: a back-dated event does not show until the fit goes stale...
    fitted_at = ForecastFit.objects.get(tenant=tenant, product_id="", customer_id="",
                                        horizon="30d").fitted_at
    before = forecast_serve(tenant, horizon="30d", now=now)
    ingest(tenant, [{"eventId": "late", "occurredAt": now - timedelta(days=3),
                     "customerId": "cust_s", "productId": "prod_a", "cogsUsd": "50.00",
                     "revenueUsd": "1.00"}], now=now)
    assert forecast_serve(tenant, horizon="30d", now=now) == before
    # ...then a request refits on the history as it is now, equal to a fresh forecast.
    later = now + FRESH_FOR + timedelta(minutes=1)
    refitted = forecast_serve(tenant, horizon="30d", now=later)
    assert refitted != before
    assert refitted == scope_forecast(tenant.slug, time_zone=tenant.time_zone, horizon="30d",
                                      today=later.date())
    assert ForecastFit.objects.get(tenant=tenant, product_id="", customer_id="",
                                   horizon="30d").fitted_at > fitted_at
