"""Shared fixtures: fresh tenants, API clients per role, and the event store on both backends."""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from aforo import eventstore
from aforo.eventstore import ChdbStore, ServerStore
from aforo.eventstore.migrate import migrate_eventstore
from aforo.models import Role
from aforo.tenancy import api_token_create, tenant_create

BACKENDS = ["server", "chdb"]
RAW_LEDGER_READ = re.compile(r"\bFROM ledger WHERE\b")  # the builder's rendering
# Modules whose `store` tests also run on the ClickHouse test cluster (2 shards x 2 replicas):
# the event store, exactly-once ingest, attribution and the COGS reconciliations.
CLUSTER_MODULES = frozenset({
    "tests/aforo/test_eventstore.py",
    "tests/ingestion/test_exactly_once.py",
    "tests/billing/test_attribution.py",
    "tests/cogs/test_reconciliation.py",
    "tests/cost_sources/test_reconciliation.py",
    "tests/aforo/test_cluster.py",
    "tests/margin_guard/test_impact_read_models.py",
})


def pytest_collection_modifyitems(config, items):
    """The cluster variant of `store` tests runs only in CLUSTER_MODULES (deselected elsewhere)."""
    root = Path(__file__).resolve().parent.parent
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("store") == "cluster":
            relative = Path(str(item.fspath)).resolve().relative_to(root).as_posix()
            if relative not in CLUSTER_MODULES:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _chdb_path() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return str(settings.VAR_DIR / f"test-chdb-{worker}")


@pytest.fixture(scope="session")
def event_stores():
    """One migrated store per backend for the whole run (chdb allows one per process)."""
    stores = {}
    if settings.CLICKHOUSE_URL:
        stores["server"] = ServerStore(settings.CLICKHOUSE_URL)
    stores["chdb"] = ChdbStore(_chdb_path())
    for store in stores.values():
        migrate_eventstore(store)
    yield stores
    for store in stores.values():
        store.close()


_cluster_runs = {"ran": 0, "skipped_reason": ""}


@pytest.fixture(scope="session")
def test_cluster():
    """The ClickHouse test cluster, started by the first test that needs it."""
    from tests.clickhouse_cluster import TestCluster

    cluster = TestCluster().start()
    _cluster_runs["skipped_reason"] = cluster.skip_reason
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def cluster_store(test_cluster):
    """The migrated event store on the cluster (its Distributed tables via node 1)."""
    if not test_cluster.up:
        pytest.skip(test_cluster.skip_reason)
    store = test_cluster.store()
    migrate_eventstore(store)
    yield store
    store.close()


@pytest.fixture(params=[*BACKENDS, "cluster"])
def store(request, event_stores):
    """The event store, once per backend: every test using it runs on chdb and the server
    (and, in CLUSTER_MODULES, on the ClickHouse test cluster)."""
    if request.param == "cluster":
        chosen = request.getfixturevalue("cluster_store")
        eventstore.set_default(chosen)
        yield chosen
        eventstore.set_default(None)
        return
    if request.param not in event_stores:
        pytest.skip("CLICKHOUSE_URL is not set; `make test` starts a ClickHouse server")
    chosen = event_stores[request.param]
    eventstore.set_default(chosen)
    yield chosen
    eventstore.set_default(None)


@pytest.fixture
def ledger_reads(store, monkeypatch):
    """The SQL of every statement the test sends that reads the raw ledger (reads of its read
    models are not counted): for tests that a page reads the ledger once, not once a row."""
    seen: list[str] = []
    rows = store.rows

    def counted(sql, params=None):
        if RAW_LEDGER_READ.search(sql):
            seen.append(sql)
        return rows(sql, params)

    monkeypatch.setattr(store, "rows", counted)
    return seen


@pytest.fixture
def tenant(db):
    return tenant_create(slug=f"t-{uuid.uuid4().hex[:12]}", name="Test tenant")


@pytest.fixture
def other_tenant(db):
    return tenant_create(slug=f"o-{uuid.uuid4().hex[:12]}", name="Other tenant")


def api_client(tenant, role: Role | str = Role.OWNER, *, send_tenant: bool = True) -> APIClient:
    issued = api_token_create(tenant=tenant, role=role)
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {issued.raw}"}
    if send_tenant:
        headers["HTTP_X_TENANT_ID"] = tenant.slug
    client.credentials(**headers)
    return client


def issue_token(tenant, role: Role | str = Role.OWNER) -> str:
    """A fresh API token's secret for the tenant."""
    return api_token_create(tenant=tenant, role=role).raw


@pytest.fixture
def api(tenant):
    """An OWNER's API client for the test's tenant."""
    return api_client(tenant)


# --- a live ASGI server (browser tests, the API conformance run) ---------------------------

@pytest.fixture(scope="session")
def live_server_url():
    from aforo.asgi import application
    from tests.console.live_server import LiveAsgiServer

    server = LiveAsgiServer(application).start()
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def live_api_url():
    """The production web server (uvicorn, as the Procfile runs it) in a thread of the test
    process, so it shares the test database settings and the event store the test chose."""
    import socket
    import threading
    import time

    import uvicorn

    from aforo.asgi import application

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start listening")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


class RestartableApiServer:
    """The production web server (uvicorn) in a thread, on one loopback port it keeps across a
    stop and a start, so a client sees the server go away and come back at the same URL."""

    def __init__(self) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None
        self._thread = None

    def start(self) -> RestartableApiServer:
        import threading
        import time

        import uvicorn

        from aforo.asgi import application

        self._server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1",
                                                     port=self.port, log_level="warning",
                                                     lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("uvicorn did not start listening")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=15)
            self._server = None


@pytest.fixture
def restartable_api():
    server = RestartableApiServer().start()
    yield server
    server.stop()


@pytest.fixture
def browser_store(event_stores):
    """One backend is enough in the browser; the server one when `make test` runs it."""
    chosen = event_stores.get("server") or event_stores["chdb"]
    eventstore.set_default(chosen)
    yield chosen
    eventstore.set_default(None)


from tests.clickhouse_server import private_clickhouse  # noqa: E402,F401  (a shared fixture)
from tests.private_services import private_postgres, private_redis  # noqa: E402,F401
from tests.sinks import fake_openai, fake_provider, http_sink, smtp_sink  # noqa: E402,F401,E501


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item):
    """Let the guard's post-ingest evaluations that a test queued finish before its fixtures are
    torn down: one still running holds rows that the database flush would deadlock against."""
    from margin_guard.services import guard_evaluations_wait

    guard_evaluations_wait()


def pytest_runtest_setup(item):
    callspec = getattr(item, "callspec", None)
    if "cluster_store" in item.fixturenames or (
            callspec is not None and callspec.params.get("store") == "cluster"):
        _cluster_runs["ran"] += 1


def pytest_terminal_summary(terminalreporter):
    """Say in the summary whether the cluster backend ran (or why it was skipped)."""
    if _cluster_runs["skipped_reason"]:
        terminalreporter.write_line(_cluster_runs["skipped_reason"], yellow=True)
    elif _cluster_runs["ran"]:
        terminalreporter.write_line(
            f"ClickHouse test cluster (2 shards x 2 replicas): {_cluster_runs['ran']} "
            "tests ran on it")
