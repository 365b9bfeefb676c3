"""The SDK's test fakes: a local HTTP server that plays a provider (answering with the reference
fixtures' bodies) or Aforo's ingest and decision endpoints, on a free loopback port."""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REFERENCE = Path(os.environ.get("AFORO_REFERENCE_DIR",
                                Path(__file__).resolve().parents[4] / "shared" / "reference"))
FIXTURES = REFERENCE / "events" / "provider_response_fixtures"


def fixture_response(relative: str) -> dict:
    path = FIXTURES / relative
    if not path.is_file():
        pytest.skip(f"the reference fixture {relative} is absent")
    return json.loads(path.read_text())["_response"]


@dataclass
class Answer:
    status: int = 200
    body: dict | list | None = None
    sse: list[str] | None = None  # server-sent events, each a full "event:/data:" block
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeServer:
    """Records every request; `route(method, path)` answers from the handler given."""

    handlers: dict[tuple[str, str], Callable[[dict], Answer]] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    url: str = ""

    def route(self, method: str, path: str, handler: Callable[[dict], Answer] | Answer) -> None:
        self.handlers[(method, path)] = handler if callable(handler) else (lambda _r: handler)

    def received(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"].split("?", 1)[0] == path]


def start_server(server: FakeServer) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            request = {"method": method, "path": self.path, "headers": dict(self.headers),
                       "json": body, "raw": raw}
            server.requests.append(request)
            handler = server.handlers.get((method, self.path.split("?", 1)[0]))
            answer = handler(request) if handler else Answer(404, {"error": "no route"})
            if answer.sse is not None:
                payload = "".join(block + "\n\n" for block in answer.sse).encode()
                content_type = "text/event-stream"
            else:
                payload = json.dumps(answer.body).encode() if answer.body is not None else b""
                content_type = "application/json"
            self.send_response(answer.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):  # noqa: N802 (http.server's naming)
            self._serve("POST")

        def do_GET(self):  # noqa: N802
            self._serve("GET")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return httpd


def ingest_answer(request: dict) -> Answer:
    """Aforo's ingest reply: every event accepted (duplicates of ids seen before counted)."""
    events = request["json"]["events"]
    return Answer(200, {"accepted": len(events), "duplicates": 0, "rejected": 0,
                        "results": [{"eventId": e["eventId"], "status": "accepted"}
                                    for e in events]})


def sent_events(server: FakeServer) -> list[dict]:
    return [e for r in server.received("/api/v1/events") if r["json"] for e in r["json"]["events"]]
