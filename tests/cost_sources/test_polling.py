"""POLL sources against a local provider API serving the reference responses: the stored key
sent (and never shown), pagination followed, 429/5xx retried, other failures recorded."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cost_sources import polling
from cost_sources.models import CostImport, CostSource
from cost_sources.queries import billed_total
from cost_sources.tasks import poll_due
from tests.factories import reference_file

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-NEVER-SHOWN-4242"
OPENAI = "openai/costs_response_example.json"


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(polling, "BACKOFF_S", (0.0,))


def _poll_source(api, provider, kind="OPENAI_COSTS") -> dict:
    response = api.post("/api/v1/cost-sources", {
        "name": f"{kind} org", "kind": kind, "mode": "POLL", "baseUrl": provider.url,
        "credentials": SECRET, "schedule": "daily"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def _poll(api, source_id: int):
    return api.post(f"/api/v1/cost-sources/{source_id}/imports", {}, format="multipart")


def _page(start_shift_days: int, amount: str, *, more: str | None) -> bytes:
    page = json.loads(reference_file(OPENAI).read_text())
    bucket = page["data"][0]
    bucket["start_time"] += 86400 * start_shift_days
    bucket["end_time"] += 86400 * start_shift_days
    text = json.dumps({**page, "has_more": more is not None, "next_page": more})
    return text.replace('"value": 0.06', f'"value": {amount}').encode()


def test_a_poll_sends_the_stored_key_and_imports_the_reference_page(api, tenant, store,
                                                                   fake_provider):
    fake_provider.pages = [reference_file(OPENAI).read_bytes()]
    source = _poll_source(api, fake_provider)
    assert source["hasCredentials"] is True and "credentials" not in source
    response = _poll(api, source["id"])
    assert response.status_code == 201, response.content
    run = response.json()
    assert run["status"] == "SUCCEEDED" and run["totalUsd"] == 0.06
    assert billed_total(tenant.slug) == Decimal("0.06")
    (request,) = fake_provider.requests
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert request["path"] == "/v1/organization/costs"
    assert request["query"]["bucket_width"] == "1d"
    assert int(request["query"]["end_time"]) - int(request["query"]["start_time"]) == 30 * 86400
    # The next poll starts two days before the last polled day; re-polling changes nothing.
    assert _poll(api, source["id"]).json()["linesChanged"] == 0


def test_a_poll_follows_the_pages(api, tenant, store, fake_provider):
    fake_provider.pages = [_page(0, "0.06", more="p2"), _page(1, "1.25", more="p3"),
                           _page(2, "0.000000001", more=None)]
    run = _poll(api, _poll_source(api, fake_provider)["id"]).json()
    assert [r["query"].get("page") for r in fake_provider.requests] == [None, "p2", "p3"]
    assert run["rowsImported"] == 3
    assert billed_total(tenant.slug) == Decimal("1.310000001")


def test_429_and_5xx_are_retried(api, tenant, store, fake_provider):
    fake_provider.pages = [reference_file(OPENAI).read_bytes()]
    fake_provider.fail_first, fake_provider.fail_status = 2, 429
    run = _poll(api, _poll_source(api, fake_provider)["id"]).json()
    assert run["status"] == "SUCCEEDED" and len(fake_provider.requests) == 3


def test_a_refused_key_is_not_retried_and_the_run_says_so(api, tenant, store, fake_provider):
    fake_provider.pages = [reference_file(OPENAI).read_bytes()]
    fake_provider.fail_first, fake_provider.fail_status = 10, 401
    source = _poll_source(api, fake_provider)
    response = _poll(api, source["id"])
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "The provider answered HTTP 4xx."
    assert len(fake_provider.requests) == 1
    runs = api.get(f"/api/v1/cost-sources/{source['id']}/imports").json()["content"]
    assert [(r["status"], r["error"]) for r in runs] == [
        ("FAILED", "The provider answered HTTP 4xx.")]
    fake_provider.fail_first, fake_provider.fail_status = 100, 503
    assert _poll(api, source["id"]).json()["error"]["message"] == (
        "The provider answered HTTP 5xx after 4 attempts.")


def test_anthropic_polls_with_its_header(api, tenant, store, fake_provider):
    fake_provider.pages = [reference_file(
        "anthropic/cost_report_constructed_example.json").read_bytes()]
    source = _poll_source(api, fake_provider, kind="ANTHROPIC_COSTS")
    assert _poll(api, source["id"]).json()["totalUsd"] == 6.855
    headers = fake_provider.requests[0]["headers"]
    assert headers["x-api-key"] == SECRET and "Authorization" not in headers
    assert fake_provider.requests[0]["query"]["starting_at"].endswith("T00:00:00Z")


def test_credentials_never_appear_in_responses_logs_or_the_admin(api, tenant, store,
                                                                 fake_provider, caplog):
    caplog.set_level(logging.DEBUG)
    fake_provider.pages = [reference_file(OPENAI).read_bytes()]
    fake_provider.fail_first = 1
    source = _poll_source(api, fake_provider)
    bodies = [_poll(api, source["id"]).content,
              api.get("/api/v1/cost-sources").content,
              api.get(f"/api/v1/cost-sources/{source['id']}").content,
              api.get(f"/api/v1/cost-sources/{source['id']}/imports").content,
              api.patch(f"/api/v1/cost-sources/{source['id']}", {"name": "renamed"},
                        format="json").content]
    stored = CostSource.objects.get(pk=source["id"])
    assert SECRET not in stored.credentials_sealed and stored.credentials_sealed
    admin = get_user_model().objects.create_superuser("op", password="op-pass-1")
    client = Client()
    client.force_login(admin)
    page = client.get(f"/admin/cost_sources/costsource/{source['id']}/change/")
    assert page.status_code == 200
    bodies.append(page.content)
    bodies.append(client.get("/admin/cost_sources/costsource/").content)
    assert all(SECRET.encode() not in body for body in bodies)
    assert SECRET not in caplog.text
    assert stored.credentials_sealed.encode() not in page.content


def test_credentials_need_the_key_from_the_environment(api, store, fake_provider, settings):
    settings.AFORO_CREDENTIALS_KEY = ""
    response = api.post("/api/v1/cost-sources", {
        "name": "x", "kind": "OPENAI_COSTS", "mode": "POLL", "credentials": SECRET},
        format="json")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "credentials"
    assert "AFORO_CREDENTIALS_KEY" in response.json()["error"]["message"]


def test_files_in_your_own_storage_cannot_be_polled(api, store):
    response = api.post("/api/v1/cost-sources", {"name": "x", "kind": "AWS_CUR",
                                                 "mode": "POLL"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "mode"


def test_the_hourly_sweep_polls_the_sources_that_are_due(api, tenant, store, fake_provider):
    fake_provider.pages = [reference_file(OPENAI).read_bytes()]
    source = _poll_source(api, fake_provider)
    assert poll_due() == 1  # eager: the per-source task ran
    assert CostImport.objects.get(source_id=source["id"]).status == "SUCCEEDED"
    assert poll_due() == 0  # daily: not due again within the day
