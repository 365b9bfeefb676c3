"""Bad input on console forms and pages is a message or a 400, never a 500."""
from __future__ import annotations

import pytest

from budgets.models import AlertRule, CostBudget


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "nan", "12abc"])
def test_non_finite_numbers_in_budget_and_rule_forms_are_refused(console, tenant, store,
                                                                  number):
    response = console.post("/console/cogs/budgets/new/", {
        "name": "b", "period": "MONTHLY", "cap_usd": number, "warning_threshold_pct": "80"},
        follow=True)
    assert response.status_code == 200
    assert b"Budget not saved" in response.content
    response = console.post("/console/cogs/rules/save/", {
        "name": "r", "metric": "COST", "comparison": "GT", "threshold": number,
        "window": "24h", "channel": "EMAIL", "destination": "ops@example.com"}, follow=True)
    assert response.status_code == 200
    assert b"Rule not saved" in response.content
    assert not CostBudget.objects.filter(tenant=tenant).exists()
    assert not AlertRule.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
def test_non_integer_ids_and_huge_pages_are_not_errors(console, store):
    response = console.post("/console/cogs/rules/save/", {
        "rule_id": "abc", "name": "r", "metric": "COST", "comparison": "GT", "threshold": "1",
        "window": "24h", "channel": "EMAIL", "destination": "ops@example.com"}, follow=True)
    assert response.status_code == 200 and b"Rule not saved" in response.content
    assert console.get("/console/cogs/budgets/?edit_rule=abc").status_code == 200
    assert console.get("/console/cogs/transactions/?page=99999999999999999999999").status_code \
        == 200
    assert console.get("/console/cogs/pnl/?page=99999999999999999999999").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["page=99999999999999999999", "page=-1", "size=0",
                                   "page=1.5", "size=abc"])
def test_huge_or_bad_page_values_are_400_in_the_api(api, store, query):
    response = api.get(f"/api/v1/analytics/cogs/dashboard/transactions?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["field"] in ("page", "size")


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "100001", "99999999999999999999", "x"])
def test_huge_or_bad_limits_are_400(api, store, limit):
    response = api.get(f"/api/v1/analytics/cogs/dashboard/by-customer?limit={limit}")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "limit"
