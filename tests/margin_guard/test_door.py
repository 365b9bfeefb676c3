"""The decision's door answering on the event loop from what the refresher keeps (held tokens,
the decision mirror), under the production server (uvicorn on aforo.asgi, in a thread of this
process, so the test runs the refresher's rounds itself: AFORO_REFRESH_THREAD is off here).

Every test counts which way each call went: the door itself (no I/O) or the slow path."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.utils import timezone

from aforo import eventstore, refresher
from aforo.models import ApiToken
from aforo.refresher import refresh_round
from aforo.shared_cache import shared_cache
from aforo.tenancy import api_token_create
from entitlements.services import entitlement_create
from margin_guard import decision, fastpath
from margin_guard.fastpath import DECIDE_PATH
from tests.factories import prepaid_wallet
from tests.factories import token_events as _tokens

pytestmark = pytest.mark.django_db(transaction=True)
BODY = {"customerId": "c1", "productId": "p1", "model": "gpt-4o"}


class Door:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ways: list[str] = []

    def post(self, raw: str, tenant_slug: str, body: dict = BODY) -> requests.Response:
        return requests.post(f"{self.url}{DECIDE_PATH}", json=body, timeout=30,
                             headers={"Authorization": f"Bearer {raw}",
                                      "X-Tenant-Id": tenant_slug})

    def last(self) -> str:
        return self.ways[-1]


@pytest.fixture
def door(live_api_url, monkeypatch):
    """The served door, its ways counted; what the refresher holds is trusted for the test's
    length (the rounds are the test's own), and nothing is held from another test."""
    refresher.forget_all()
    decision.mirror_forget()
    monkeypatch.setattr(refresher, "TOKEN_TRUST_S", 3600.0)
    monkeypatch.setattr(decision, "LOCAL_TTL", 3600.0)
    served = Door(live_api_url)
    held, slow = fastpath.answer_held, fastpath._decide

    def counted_held(headers, body):
        answer = held(headers, body)
        if answer is not None:
            served.ways.append("door")
        return answer

    def counted_slow(meta, body):
        served.ways.append("slow")
        return slow(meta, body)

    monkeypatch.setattr(fastpath, "answer_held", counted_held)
    monkeypatch.setattr(fastpath, "_decide", counted_slow)
    yield served
    refresher.forget_all()
    decision.mirror_forget()


def test_a_revoked_token_is_refused_by_the_door_after_one_refresh_round(throttled, door):
    issued = api_token_create(tenant=throttled, role="DEVELOPER")
    first = door.post(issued.raw, throttled.slug)
    assert first.status_code == 200 and door.ways == ["slow"]  # learnt: held from now on
    refresh_round()
    held = door.post(issued.raw, throttled.slug)
    assert held.status_code == 200 and door.ways == ["slow", "door"]
    assert held.json() == first.json()
    # revoked where this process does not hear of it (another worker, the admin)
    ApiToken.objects.filter(pk=issued.token.pk).update(revoked_at=timezone.now())
    refresh_round()
    refused = door.post(issued.raw, throttled.slug)
    assert refused.status_code == 401 and door.last() == "slow"
    assert refused.json()["error"]["code"] == "authentication_failed"
    assert door.post(issued.raw, throttled.slug).status_code == 401
    assert "door" not in door.ways[2:]


def test_a_token_answered_by_the_door_gets_its_last_use_written_by_the_refresher(
        throttled, door):
    issued = api_token_create(tenant=throttled, role="DEVELOPER")
    assert door.post(issued.raw, throttled.slug).status_code == 200
    refresh_round()
    long_ago = timezone.now() - timedelta(hours=2)
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=long_ago)
    before = timezone.now()
    assert door.post(issued.raw, throttled.slug).status_code == 200
    assert door.last() == "door"
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at == long_ago  # not on the path
    refresh_round()
    written = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    assert written >= before
    # another use within the minute is not written again (the slow path's granularity)
    assert door.post(issued.raw, throttled.slug).status_code == 200
    refresh_round()
    assert ApiToken.objects.get(pk=issued.token.pk).last_used_at == written


def _asgi_post(app, body: bytes, headers: list[tuple[bytes, bytes]]):
    scope = {"type": "http", "method": "POST", "path": DECIDE_PATH, "headers": headers,
             "query_string": b"", "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}

    async def run():
        communicator = ApplicationCommunicator(app, scope)
        await communicator.send_input({"type": "http.request", "body": body,
                                       "more_body": False})
        start = await communicator.receive_output(10)
        payload = await communicator.receive_output(10)
        return start["status"], start["headers"], payload["body"]

    return async_to_sync(run)()


def test_the_door_the_slow_path_and_the_django_view_answer_the_same_bytes(throttled, door):
    """Status, body and every header (names, values, order) alike: the door on the event loop,
    the door's slow path, and Django's own view behind its whole middleware."""
    from aforo.asgi import django_asgi_app

    entitlement_create(tenant=throttled, customer_id="c1", feature="EVENTS",
                       limit=Decimal(1000))
    issued = api_token_create(tenant=throttled, role="DEVELOPER")
    body = json.dumps(BODY).encode()
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {issued.raw}".encode()),
               (b"x-tenant-id", throttled.slug.encode()),
               (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    app = fastpath.DecideFastPath(django_asgi_app)
    django = _asgi_post(django_asgi_app, body, headers)
    refresher.forget_all()  # the view held the token: the door would answer it now
    slow = _asgi_post(app, body, headers)
    assert door.ways == ["slow"]
    refresh_round()
    held = _asgi_post(app, body, headers)
    assert door.ways == ["slow", "door"]
    assert held == slow == django
    status, response_headers, content = held
    assert status == 200 and (b"X-Aforo-Model-Downgrade", b"gpt-4o-mini") in response_headers
    assert (b"X-Frame-Options", b"DENY") in response_headers
    assert json.loads(content)["remaining"][0]["limit"] == 1000
    # the refusals come from the slow path, alike too
    for changed in ([h for h in headers if h[0] != b"authorization"],
                    [(b"x-tenant-id", b"nobody") if h[0] == b"x-tenant-id" else h
                     for h in headers]):
        assert _asgi_post(app, body, changed) == _asgi_post(django_asgi_app, body, changed)
    bad = b'{"model": 1}'
    bad_headers = [h if h[0] != b"content-length" else (h[0], str(len(bad)).encode())
                   for h in headers]
    assert _asgi_post(app, bad, bad_headers) == _asgi_post(django_asgi_app, bad, bad_headers)
    assert door.ways.count("door") == 1

    # served by uvicorn: the same headers, bar its own Date
    reply = door.post(issued.raw, throttled.slug)
    assert door.last() == "door"
    door.ways.clear()
    refresher.forget_all()
    again = door.post(issued.raw, throttled.slug)
    assert door.ways == ["slow"]
    assert reply.content == again.content
    assert ([(k, v) for k, v in reply.raw.headers.items() if k.lower() != "date"]
            == [(k, v) for k, v in again.raw.headers.items() if k.lower() != "date"])


def test_a_request_out_of_the_ordinary_goes_to_django(throttled, door):
    """A Host not allowed is Django's 400; the door never answers it."""
    issued = api_token_create(tenant=throttled, role="DEVELOPER")
    assert door.post(issued.raw, throttled.slug).status_code == 200
    refresh_round()
    reply = requests.post(f"{door.url}{DECIDE_PATH}", json=BODY, timeout=30, headers={
        "Authorization": f"Bearer {issued.raw}", "X-Tenant-Id": throttled.slug,
        "Host": "evil.example"})
    assert reply.status_code == 400
    # a repeated credential header is Django's to answer too (it joins them: a 401 here)
    body = json.dumps(BODY).encode()
    headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {issued.raw}".encode()),
               (b"authorization", f"Bearer {issued.raw}".encode()),
               (b"x-tenant-id", throttled.slug.encode()),
               (b"content-length", str(len(body)).encode())]

    async def django_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"django"})

    status, _headers, content = _asgi_post(fastpath.DecideFastPath(django_app), body, headers)
    assert (status, content) == (299, b"django")
    assert door.ways == ["slow"]


def test_a_mode_change_published_by_another_process_is_seen_after_a_refresh_round(
        throttled, door):
    issued = api_token_create(tenant=throttled, role="DEVELOPER")
    door.post(issued.raw, throttled.slug)
    refresh_round()
    assert door.post(issued.raw, throttled.slug).json()["decision"] == "THROTTLE"
    assert door.last() == "door"
    # another process's profile_store: into Redis, not into this process's mirror
    key = f"aforo:guard:{throttled.slug}:c1:"
    profile = {**shared_cache().get(key), "mode": "DRY_RUN"}
    shared_cache().set(key, profile, 3600)
    refresh_round()
    answer = door.post(issued.raw, throttled.slug).json()
    assert door.last() == "door"
    assert (answer["decision"], answer["wouldDecide"]) == ("ALLOW", "THROTTLE")


def test_quota_and_wallet_used_up_in_another_process_are_seen_after_a_refresh_round(
        event_stores, tenant, door):
    from tests.entitlements.processes import ingest_from_processes

    if "server" not in event_stores:
        pytest.skip("two processes share the ClickHouse server only; `make test` starts one")
    eventstore.set_default(event_stores["server"])
    try:
        entitlement_create(tenant=tenant, customer_id="cust_q", feature="TOKENS",
                           limit=Decimal(10_000), overage="BLOCK")
        prepaid_wallet(tenant, "cust_w", credits="10")
        issued = api_token_create(tenant=tenant, role="DEVELOPER")
        for customer in ("cust_q", "cust_w"):
            answer = door.post(issued.raw, tenant.slug, {"customerId": customer}).json()
            assert answer["decision"] == "ALLOW"
        refresh_round()
        assert door.post(issued.raw, tenant.slug, {"customerId": "cust_q"}).json()[
            "decision"] == "ALLOW"
        assert door.last() == "door"
        results = ingest_from_processes(tenant.slug, [
            [_tokens("q", 3, 4000, customer="cust_q"), _tokens("w", 4, 4000, customer="cust_w")]])
        assert results == [("ok", 2)]
        refresh_round()
        door.ways.clear()
        quota = door.post(issued.raw, tenant.slug, {"customerId": "cust_q"}).json()
        wallet = door.post(issued.raw, tenant.slug, {"customerId": "cust_w"}).json()
        assert door.ways == ["door", "door"]
        assert (quota["decision"], quota["reasonCode"]) == ("BLOCK", "ENTITLEMENT_EXCEEDED")
        assert (wallet["decision"], wallet["reasonCode"]) == ("BLOCK", "WALLET_EMPTY")
    finally:
        eventstore.set_default(None)
