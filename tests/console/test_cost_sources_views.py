"""The Cost sources tab through Django's test client: a POLL source added with its key (which
the page never shows) and polled now; a malformed upload's message; read roles see no forms."""
from __future__ import annotations

import html

import pytest
from django.test import Client

from aforo.models import Role
from cost_sources.models import CostImport, CostSource
from tests.console.conftest import console_user
from tests.factories import reference_file

SECRET = "sk-admin-CONSOLE-NEVER-SHOWN"


@pytest.mark.django_db
def test_a_poll_source_is_added_and_polled_from_the_page(console, tenant, store, fake_provider):
    fake_provider.pages = [reference_file("openai/costs_response_example.json").read_bytes()]
    response = console.post("/console/cogs/cost-sources/new/", {
        "name": "OpenAI org", "kind": "OPENAI_COSTS", "mode": "POLL",
        "credentials": SECRET, "base_url": fake_provider.url, "schedule": "hourly"},
        follow=True)
    assert "Cost source “OpenAI org” created." in html.unescape(response.content.decode())
    source = CostSource.objects.get(tenant=tenant)
    assert source.schedule == "hourly" and source.credentials_sealed
    response = console.post(f"/console/cogs/cost-sources/{source.pk}/import/", follow=True)
    page = html.unescape(response.content.decode())
    assert "Polled “OpenAI org”: 1 rows, 1 lines changed." in page
    assert fake_provider.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in page and source.credentials_sealed not in page
    assert 'data-status="SUCCEEDED"' in page


@pytest.mark.django_db
def test_a_malformed_upload_says_which_row_and_column(console, tenant, store):
    console.post("/console/cogs/cost-sources/new/", {"name": "FOCUS", "kind": "FOCUS"})
    source = CostSource.objects.get(tenant=tenant)
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("f.csv", b"BilledCost,ChargePeriodStart\n$x,2025-01-01\n")
    response = console.post(f"/console/cogs/cost-sources/{source.pk}/import/",
                            {"file": upload}, follow=True)
    assert ("Import failed: Row 2, column BilledCost: '$x' is not an amount of money."
            in html.unescape(response.content.decode()))
    assert CostImport.objects.get(source=source).status == "FAILED"


@pytest.mark.django_db
def test_a_viewer_sees_the_streams_but_no_forms(tenant, store):
    CostSource.objects.create(tenant=tenant, name="AWS", kind="AWS_CUR")
    client = Client()
    client.force_login(console_user(tenant, "viewer", Role.VIEWER))
    page = client.get("/console/cogs/cost-sources/").content.decode()
    assert 'data-table="cost-streams"' in page and "New cost source" not in page
    assert "Import into" not in page
    response = client.post("/console/cogs/cost-sources/new/", {"name": "x", "kind": "FOCUS"},
                           follow=True)
    assert "may view cost sources but not change them" in response.content.decode()
    assert CostSource.objects.filter(tenant=tenant).count() == 1
