"""The decision's own door: POST /api/v1/margin-guard/decide served before Django's middleware.

Under ASGI every Django middleware runs its hooks through a thread hop, which costs the
decision ~3 ms per call (measured). This ASGI app answers that one path itself, in three ways:

1. on the event loop, with no thread hop and no I/O at all, when everything it needs is held
   in this process: the token validated under aforo.refresher.TOKEN_TRUST_S (2 s) ago and
   naming the tenant in X-Tenant-Id, and the customer's profiles in the decision mirror fresher
   than decision.LOCAL_TTL (both kept current by the refresher thread, aforo/refresher.py);
2. otherwise in a worker thread with the Django view's own code (`decide_request`), which may
   read PostgreSQL (an unknown token) or Redis (a stale mirror, a rate limit), and holds the
   token for the next calls;
3. a request out of the ordinary (a Host not in ALLOWED_HOSTS, plain http under
   SECURE_SSL_REDIRECT, a large or chunked body, a repeated credential header) goes to
   Django with its whole middleware, as every other path does.

Ways 1 and 2 answer with the bytes the Django view does, the headers its middleware adds
included (security_headers); a test compares the three.
"""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import msgspec
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http.request import HttpHeaders, split_domain_port, validate_host

from aforo import refresher
from aforo.models import ApiToken
from margin_guard import decision

DECIDE_PATH = "/api/v1/margin-guard/decide"
MAX_BODY = 64 * 1024
_HOSTS_HELD = 256


def _meta(scope) -> dict[str, str]:
    """The request headers as Django's META names them (HTTP_X_TENANT_ID, ...)."""
    meta = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        if name not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = f"HTTP_{name}"
        meta[name] = raw_value.decode("latin-1")
    return meta


async def _body(receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return b"\xff"  # not JSON: answered 415
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _decide(meta: dict[str, str], body: bytes):
    from margin_guard.api import decide_request

    return decide_request(SimpleNamespace(META=meta, headers=HttpHeaders(meta)), body)


class _Security:
    """What Django's middleware would do to this path's response, read once from settings."""

    def __init__(self) -> None:
        self.redirect = settings.SECURE_SSL_REDIRECT and not any(
            re.compile(p).search(DECIDE_PATH.lstrip("/")) for p in settings.SECURE_REDIRECT_EXEMPT)
        proxy = settings.SECURE_PROXY_SSL_HEADER
        self.proxy_header = (proxy[0][5:].lower().replace("_", "-").encode(), proxy[1]) \
            if proxy else None
        self.hosts: dict[bytes, bool] = {}
        after = []  # SecurityMiddleware's, in its order, after CommonMiddleware's length
        if settings.SECURE_CONTENT_TYPE_NOSNIFF:
            after.append((b"X-Content-Type-Options", b"nosniff"))
        policy = settings.SECURE_REFERRER_POLICY
        if policy:
            value = ",".join([v.strip() for v in policy.split(",")]
                             if isinstance(policy, str) else policy)
            after.append((b"Referrer-Policy", value.encode()))
        if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
            after.append((b"Cross-Origin-Opener-Policy",
                          settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
        sts = []
        if settings.SECURE_HSTS_SECONDS:
            value = f"max-age={settings.SECURE_HSTS_SECONDS}"
            if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
                value += "; includeSubDomains"
            if settings.SECURE_HSTS_PRELOAD:
                value += "; preload"
            sts = [(b"Strict-Transport-Security", value.encode())]
        self.after = {False: after, True: sts + after}
        self.frame = (b"X-Frame-Options", getattr(settings, "X_FRAME_OPTIONS", "DENY")
                      .upper().encode())

    def host_allowed(self, host: bytes) -> bool:
        allowed = self.hosts.get(host)
        if allowed is None:
            domain, _port = split_domain_port(host.decode("latin-1"))
            allowed = bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)
            if len(self.hosts) > _HOSTS_HELD:
                self.hosts.clear()
            self.hosts[host] = allowed
        return allowed

    def is_secure(self, scope, headers: dict[bytes, bytes]) -> bool:
        if self.proxy_header is not None:
            value = headers.get(self.proxy_header[0])
            if value is not None:
                return value.decode("latin-1").split(",", 1)[0].strip() == self.proxy_header[1]
        return scope.get("scheme") == "https"


def response_headers(security: _Security, secure: bool, length: int,
                     extra: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The Django view's headers, in its order: Content-Type, the view's own, then what
    XFrameOptions, Common (Content-Length) and Security middleware add."""
    return [(b"Content-Type", b"application/json"), *extra, security.frame,
            (b"Content-Length", str(length).encode()), *security.after[secure]]


_decide_in = None


def _decoder():
    global _decide_in
    if _decide_in is None:
        from margin_guard.api import _decide_in as decoder

        _decide_in = decoder
    return _decide_in


def answer_held(headers: dict[bytes, bytes], body: bytes):
    """Way 1: (status, extra headers, body bytes) from what this process holds, or None."""
    authorization = headers.get(b"authorization")
    if authorization is None or authorization[:7].lower() != b"bearer ":
        return None
    raw = authorization[7:].strip()
    if not raw:
        return None
    held = refresher.token_held(ApiToken.hash_token(raw.decode("latin-1")))
    if held is None:
        return None
    tenant = headers.get(b"x-tenant-id")
    if tenant is None or tenant.decode("latin-1").strip() != held.tenant_slug:
        return None  # no tenant, or another one: the slow path says which refusal
    try:
        values = _decoder().decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None  # its 400 or 415 from the slow path, worded there
    verdict = decision.decide_held(held.tenant_slug, values.customer_id, values.product_id,
                                   values.model, values.feature)
    if verdict is None:
        return None
    extra = []
    if verdict.downgrade_to:
        extra.append((b"X-Aforo-Model-Downgrade", verdict.downgrade_to.encode("latin-1")))
    if verdict.retry_after:
        extra.append((b"Retry-After", str(verdict.retry_after).encode()))
    return (429 if verdict.retry_after else 200), extra, _encoded(verdict)


_ENCODED_HELD = 4096
_encodings: dict[tuple, tuple[bytes, tuple]] = {}


def _encoded(verdict) -> bytes:
    """The verdict's JSON body (json.dumps's bytes, as the Django view's), remembered: a
    customer's calls mostly repeat one verdict. `remaining` holds the published state's own
    entitlement dicts (never changed once published), keyed by identity and kept alive by the
    entry, so an id cannot be reused while it is remembered."""
    remaining = verdict.remaining
    key = (verdict.decision, verdict.level, verdict.model, verdict.downgrade_to,
           verdict.retry_after, verdict.would, verdict.reason, verdict.reason_code,
           *map(id, remaining))
    held = _encodings.get(key)
    if held is not None:
        return held[0]
    content = json.dumps(verdict.as_json()).encode()
    if len(_encodings) >= _ENCODED_HELD:
        _encodings.clear()
    _encodings[key] = (content, remaining)
    return content


async def _answer_slow(meta: dict[str, str], body: bytes):
    """Way 2: the Django view's code in a worker thread."""
    status, extra, payload = await sync_to_async(_decide, thread_sensitive=False)(meta, body)
    content = json.dumps(payload).encode()
    out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
           if k.lower() not in ("content-type", "content-length")]
    return status, out, content


class DecideFastPath:
    def __init__(self, app) -> None:
        self.app = app
        self._security: _Security | None = None

    async def __call__(self, scope, receive, send) -> None:
        if not (scope["type"] == "http" and scope["path"] == DECIDE_PATH
                and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        security = self._security
        if security is None:
            security = self._security = _Security()
            refresher.refresher_start()
        headers: dict[bytes, bytes] = {}
        repeated = False
        for name, value in scope.get("headers", ()):
            if name in headers and name in (b"authorization", b"x-tenant-id", b"host",
                                            b"content-length"):
                repeated = True  # Django joins them: its answer, not ours
            headers[name] = value
        host = headers.get(b"host")
        if host is None and scope.get("server"):  # as Django: the server's own name
            host = scope["server"][0].encode("latin-1")
        declared = headers.get(b"content-length", b"0")
        secure = security.is_secure(scope, headers)
        if (repeated or host is None or not security.host_allowed(host)
                or (security.redirect and not secure)
                or not declared.isdigit() or int(declared) > MAX_BODY
                or b"transfer-encoding" in headers):
            await self.app(scope, receive, send)  # way 3: Django, the body unread
            return
        body = await _body(receive)
        if body is None:
            return
        answer = answer_held(headers, body)
        if answer is None:
            answer = await _answer_slow(_meta(scope), body)
        status, extra, content = answer
        await send({"type": "http.response.start", "status": status,
                    "headers": response_headers(security, secure, len(content), extra)})
        await send({"type": "http.response.body", "body": content})
