"""Fixtures for the SDK's tests: a fake provider and a stand-in Aforo on loopback."""
from __future__ import annotations

import pytest
from sdk_fakes import FakeServer, ingest_answer, start_server


@pytest.fixture
def provider():
    """A fake provider on loopback."""
    server = FakeServer()
    httpd = start_server(server)
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def aforo_server():
    """A stand-in Aforo on loopback whose ingest accepts everything (routes can be replaced)."""
    server = FakeServer()
    server.route("POST", "/api/v1/events", ingest_answer)
    httpd = start_server(server)
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def aforo(aforo_server):
    from aforo_sdk import Aforo

    client = Aforo(aforo_server.url, "tok_test", "acme", flush_interval=0.05, default=True)
    yield client
    client.close(timeout=2)
