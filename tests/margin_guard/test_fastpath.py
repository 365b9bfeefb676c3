"""The decision's ASGI door answers exactly as the Django view, and passes everything else on."""
from __future__ import annotations

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator

from margin_guard.fastpath import DECIDE_PATH, DecideFastPath
from tests.conftest import api_client

pytestmark = pytest.mark.django_db(transaction=True)


async def _post(app, path: str, body: bytes, headers: list[tuple[bytes, bytes]]):
    scope = {"type": "http", "method": "POST", "path": path, "headers": headers,
             "query_string": b"", "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}
    communicator = ApplicationCommunicator(app, scope)
    await communicator.send_input({"type": "http.request", "body": body, "more_body": False})
    start = await communicator.receive_output(5)
    payload = await communicator.receive_output(5)
    # names as Django's view sends them (Content-Type, ...): compared case-insensitively
    return start["status"], {k.lower(): v for k, v in start["headers"]}, payload["body"]


def test_the_fast_path_matches_the_view(throttled):
    async_to_sync(_scenario)(throttled)


async def _scenario(throttled):
    from aforo.tenancy import api_token_create

    issued = await sync_to_async(api_token_create)(tenant=throttled, role="DEVELOPER")
    headers = [(b"authorization", f"Bearer {issued.raw}".encode()),
               (b"x-tenant-id", throttled.slug.encode()),
               (b"content-type", b"application/json")]
    body = json.dumps({"customerId": "c1", "productId": "p1", "model": "gpt-4o"}).encode()

    async def django_app(scope, receive, send):  # everything else falls through to here
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})

    app = DecideFastPath(django_app)
    status, response_headers, content = await _post(app, DECIDE_PATH, body, headers)
    assert status == 200
    assert response_headers[b"x-aforo-model-downgrade"] == b"gpt-4o-mini"
    assert json.loads(content)["decision"] == "THROTTLE"

    view = await sync_to_async(lambda: api_client(throttled, "DEVELOPER").post(
        DECIDE_PATH, json.loads(body), format="json").json())()
    assert json.loads(content) == view

    status, _h, content = await _post(app, DECIDE_PATH, body, headers[1:])
    assert status == 401 and json.loads(content)["error"]["code"] == "not_authenticated"
    status, _h, content = await _post(app, DECIDE_PATH, b'{"model": 1}', headers)
    assert status == 400 and json.loads(content)["error"]["field"] == "model"
    status, _h, content = await _post(app, DECIDE_PATH, b"nope", headers)
    assert status == 415
    status, _h, content = await _post(app, "/api/v1/events", body, headers)
    assert (status, content) == (299, b"django")


def test_uvicorn_serves_the_decision_through_the_fast_path(throttled, other_tenant,
                                                           live_api_url, monkeypatch):
    """The production server (uvicorn on aforo.asgi) answers decide through its own door, with
    the Django view's body, and a token decides only for its own tenant."""
    import requests

    from aforo.tenancy import api_token_create
    from margin_guard import fastpath

    served = []
    door = fastpath._decide

    def counted(meta, body):
        served.append(meta.get("HTTP_X_TENANT_ID"))
        return door(meta, body)

    monkeypatch.setattr(fastpath, "_decide", counted)
    issued = api_token_create(tenant=throttled, role="DEVELOPER")
    headers = {"Authorization": f"Bearer {issued.raw}", "X-Tenant-Id": throttled.slug}
    body = {"customerId": "c1", "productId": "p1", "model": "gpt-4o"}
    reply = requests.post(f"{live_api_url}{DECIDE_PATH}", json=body, headers=headers,
                          timeout=30)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["X-Aforo-Model-Downgrade"] == "gpt-4o-mini"
    view = api_client(throttled, "DEVELOPER").post(DECIDE_PATH, body, format="json")
    assert reply.json() == view.json()
    assert served == [throttled.slug]

    # the same token naming another tenant is refused, whichever door answers
    foreign = requests.post(f"{live_api_url}{DECIDE_PATH}", json=body, timeout=30,
                            headers={**headers, "X-Tenant-Id": other_tenant.slug})
    assert foreign.status_code == 403
    assert requests.post(f"{live_api_url}{DECIDE_PATH}", json=body, timeout=30,
                         headers={"X-Tenant-Id": throttled.slug}).status_code == 401
