"""Both ingest doors served by the production server (uvicorn): a token, not a session, lets a
POST in (each door keeps its csrf_exempt; without it a real server refuses every POST)."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import issue_token
from tests.factories import event

pytestmark = pytest.mark.django_db(transaction=True)


def test_events_and_traces_accept_a_token_post_under_uvicorn(restartable_api, browser_store,
                                                            tenant):
    headers = {"Authorization": f"Bearer {issue_token(tenant, 'DEVELOPER')}",
               "X-Tenant-Id": tenant.slug}
    reply = requests.post(f"{restartable_api.url}/api/v1/events", json=event("served_1"),
                          headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == 1
    reply = requests.post(f"{restartable_api.url}/v1/traces", json={"resourceSpans": []},
                          headers=headers, timeout=30)
    assert reply.status_code == 200, reply.text
