"""Both ingest doors served by the production server (uvicorn): a token, not a session, lets a
POST in (no CSRF refusal), and each refuses a body declared over the cap before reading it."""
from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings

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


@pytest.mark.parametrize("path", ["/api/v1/events", "/v1/traces"])
def test_a_body_declared_over_the_cap_is_refused_unread(restartable_api, tenant, path):
    where = urlsplit(restartable_api.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    connection.putrequest("POST", path)
    for name, value in {"Authorization": f"Bearer {issue_token(tenant, 'DEVELOPER')}",
                        "X-Tenant-Id": tenant.slug, "Content-Type": "application/json",
                        "Content-Length": str(settings.AFORO_MAX_BODY_BYTES + 1)}.items():
        connection.putheader(name, value)
    connection.endheaders()  # no body is sent: the answer comes from the declared length
    answer = connection.getresponse()
    assert answer.status == 413
    connection.close()
