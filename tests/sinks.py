"""Local delivery sinks for tests: an HTTP server (Slack, webhooks) and an SMTP server."""
from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class HttpSink:
    """Records every POST; answers 500 to the first `fail_first` of them. With `redirect_to` it
    answers 302 to that URL instead; with `answer_bytes`, a body that long."""

    fail_first: int = 0
    requests: list[dict] = field(default_factory=list)
    url: str = ""
    redirect_to: str = ""
    answer_bytes: int = 0

    @property
    def accepted(self) -> list[dict]:
        return [r for r in self.requests if r["status"] == 200]


def _start_http_sink(sink: HttpSink) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status = 500 if len(sink.requests) < sink.fail_first else 200
            if sink.redirect_to:
                status = 302
            sink.requests.append({"path": self.path, "headers": dict(self.headers),
                                  "body": body, "json": json.loads(body or b"null"),
                                  "status": status})
            self.send_response(status)
            if sink.redirect_to:
                self.send_header("Location", sink.redirect_to)
            self.end_headers()
            if sink.answer_bytes:
                self.wfile.write(b"x" * sink.answer_bytes)
            else:
                self.wfile.write(b"ok" if status == 200 else b"boom")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def http_sink(settings):
    settings.AFORO_ALLOW_HTTP_WEBHOOKS = True
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]  # the sink's; an operator setting
    sink = HttpSink()
    server = _start_http_sink(sink)
    yield sink
    server.shutdown()


@pytest.fixture
def smtp_sink(settings):
    """A real SMTP server on loopback (aiosmtpd); Django sends through its SMTP backend."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received = []

    class Collect(Message):
        def handle_message(self, message):
            received.append(message)

    with socket.socket() as probe:  # aiosmtpd checks readiness on the port it was given
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    yield received
    controller.stop()


@dataclass
class FakeProvider:
    """A provider's API on loopback: answers GETs with `pages` (bytes) by the `page` cursor
    (none: the first; "p2": the second, ...), after `fail_first` answers of `fail_status`."""

    pages: list[bytes] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 503
    requests: list[dict] = field(default_factory=list)
    url: str = ""


def _start_fake_provider(provider: FakeProvider) -> ThreadingHTTPServer:
    from urllib.parse import parse_qs, urlsplit

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            failing = len(provider.requests) < provider.fail_first
            provider.requests.append({"path": urlsplit(self.path).path, "query": query,
                                      "headers": dict(self.headers)})
            if failing:
                self.send_response(provider.fail_status)
                self.end_headers()
                self.wfile.write(b"try later")
                return
            cursor = query.get("page")
            index = int(cursor[1:]) - 1 if cursor else 0
            body = provider.pages[index]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    provider.url = f"http://127.0.0.1:{server.server_address[1]}/v1/organization/costs"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def fake_provider(settings):
    """A local provider API for POLL cost sources (an operator-allowed loopback host)."""
    settings.AFORO_ALLOW_HTTP_WEBHOOKS = True
    settings.AFORO_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.AFORO_CREDENTIALS_KEY = "MfDdY-yqMYV9CG2xqsAMU8fwTMcdvH8HMz9vkOV5RkA="
    provider = FakeProvider()
    server = _start_fake_provider(provider)
    yield provider
    server.shutdown()
