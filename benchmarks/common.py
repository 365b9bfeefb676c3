"""Shared benchmark plumbing: the machine line, RESULTS.md, and a server-mode environment."""
from __future__ import annotations

import http.client
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def django_setup(var_dir: str, clickhouse_url: str = "") -> None:
    """Django on the benchmark's own store: its var dir, embedded unless a ClickHouse URL is
    given, and none of the developer's service URLs from the environment."""
    os.environ["AFORO_VAR_DIR"] = var_dir
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
    for name in ("CLICKHOUSE_URL", "DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    if clickhouse_url:
        os.environ["CLICKHOUSE_URL"] = clickhouse_url
    import django

    django.setup()


def disk_used(directory: Path) -> int:
    """Bytes the files under `directory` take on disk (a benchmark's data set)."""
    return sum(f.stat().st_blocks * 512 for f in directory.rglob("*") if f.is_file())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def machine() -> str:
    cpu = cpu_model()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def record(title: str, lines: list[str]) -> None:
    """Append a section to RESULTS.md and print it."""
    text = f"\n## {title}\n\n_{machine()}_\n\n" + "\n".join(lines) + "\n"
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach section is appended by a script in "
                           "`benchmarks/` (`make bench`).\n")
    with RESULTS.open("a") as handle:
        handle.write(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ClickHouseServer:
    """A private ClickHouse server for a benchmark run (scripts/clickhouse-test-server)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, "CH_TEST_DIR": str(directory), "CH_TEST_PORT": str(self.port),
                    "CH_TEST_HTTP_PORT": str(free_port())}

    def __enter__(self) -> ClickHouseServer:
        subprocess.run([str(ROOT / "scripts" / "clickhouse-test-server"), "start"], env=self.env,
                       check=True)
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run([str(ROOT / "scripts" / "clickhouse-test-server"), "stop"], env=self.env,
                       check=False)

    def url(self, database: str) -> str:
        return f"clickhouse://default@127.0.0.1:{self.port}/{database}"


def uvicorn_serve(env: dict, port: int, workers: int,
                  app: str = "aforo.asgi:application") -> subprocess.Popen:
    """uvicorn serving `app` on a loopback port, returned once `/healthz` answers 200: the one
    command for Aforo and for the no-op reference, so both are served the same way."""
    cmd = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--workers",
           str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(300):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start: " + proc.stderr.read().decode()[-2000:])


# --- bulk loading: the ledger's views fed once, after the load --------------------------------

@contextmanager
def ledger_views_deferred(store, tenants: list[str], *, slice_days: int = 1) -> Iterator[None]:
    """Within the block the ledger's materialized views are detached, so a benchmark's bulk
    INSERT ... SELECT writes the ledger's parts only; on leaving, each view's target gets what
    the view would have written for those tenants' ledger rows (one INSERT ... SELECT per view
    and `slice_days` of occurred_at, which bounds the engine's memory at 100M events), and the
    views are attached again. Measured: about half the time of feeding the views per block
    (benchmarks/RESULTS.md). For a benchmark's own single-node store only: the tenants must
    hold no ledger rows when the block starts, and nothing else may write to the ledger while
    it runs (its rows would reach no view). A load that fails leaves its rows unfed: start
    the benchmark's store again."""
    if store.cluster:
        raise ValueError("ledger_views_deferred is for a single-node store")
    held = store.query("SELECT count() AS n FROM ledger WHERE tenant_id IN %(tenants)s",
                       {"tenants": tuple(tenants)})
    if int(held[0]["n"]):
        raise ValueError(f"{tenants} already hold ledger rows; the views were fed those")
    views = _ledger_views(store)
    for view in views:
        store.command(f"DETACH TABLE {view.name}")
    try:
        yield
    finally:
        for view in views:
            store.command(f"ATTACH TABLE {view.name}")
    bounds = store.query(
        "SELECT toUInt32(min(occurred_at)) AS low, toUInt32(max(occurred_at)) AS high "
        "FROM ledger WHERE tenant_id IN %(tenants)s", {"tenants": tuple(tenants)})
    if not bounds or bounds[0]["low"] is None:
        return
    step = slice_days * 86400
    low = int(bounds[0]["low"]) // 86400 * 86400
    for start in range(low, int(bounds[0]["high"]) + 1, step):
        rows = (f"(SELECT * FROM {store.database}.ledger WHERE tenant_id IN %(tenants)s "
                "AND occurred_at >= toDateTime(%(start)s, 'UTC') "
                "AND occurred_at < toDateTime(%(end)s, 'UTC'))")
        for view in views:
            store.command(
                f"INSERT INTO {view.target} ({view.columns}) SELECT {view.columns} FROM "
                f"({view.select.replace(view.source, ' FROM ' + rows + ' ', 1)})",
                {"tenants": tuple(tenants), "start": start, "end": start + step})


@dataclass(frozen=True)
class _LedgerView:
    name: str
    target: str
    columns: str
    select: str  # the view's SELECT, its % signs doubled (it is run with parameters)
    source: str  # the text naming the ledger in it, which the feed replaces with its slice


def _ledger_views(store) -> list[_LedgerView]:
    """The materialized views that read the ledger (views on their targets stay attached, and
    are fed by the targets' inserts as usual)."""
    source = f" FROM {store.database}.ledger "
    views = []
    for row in store.query(
            "SELECT name, create_table_query FROM system.tables WHERE database = "
            "currentDatabase() AND engine = 'MaterializedView' ORDER BY name"):
        create = row["create_table_query"]
        if source not in create + " ":
            continue
        target = re.search(r" TO (\S+)", create).group(1)
        columns = ", ".join(c["name"] for c in store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = %(view)s", {"view": row["name"]}))
        select = (create + " ").split(" AS SELECT ", 1)[1].replace("%", "%%")
        views.append(_LedgerView(row["name"], target, columns, "SELECT " + select, source))
    return views


# --- the probes: where a request's time goes (benchmarks/read_profile.py, impact.py) --------

CLOCK: dict[str, float] = defaultdict(float)
QUERIES: list[tuple[float, str]] = []


def probe_store() -> None:
    """Wrap the store's engine call, its rows(), the API's JSON renderer and Django's database
    cursor so that each adds its time to CLOCK ("engine", "decode", "render", "db") and each
    event-store query its own (seconds, SQL) to QUERIES. Engine: time inside the store's query
    call (chdb runs the SQL and writes JSONCompact; on the server, the driver's round trip
    including its own decoding); decode: msgspec turning chdb's JSONCompact into typed tuples
    (chdb only); what a request spends outside them is Python."""
    from django.db import connections

    from aforo import eventstore, renderers
    from aforo.eventstore import backends

    store = eventstore.get_store()
    if isinstance(store, backends.ChdbStore):
        run = backends.ChdbStore._run

        def timed_run(self, sql, fmt="CSV"):
            began = time.perf_counter()
            try:
                return run(self, sql, fmt)
            finally:
                spent = time.perf_counter() - began
                CLOCK["engine"] += spent
                QUERIES.append((spent, sql))

        backends.ChdbStore._run = timed_run
    rows = type(store).rows

    def timed_rows(self, sql, params=None):
        began = time.perf_counter()
        engine_before = CLOCK["engine"]
        try:
            return rows(self, sql, params)
        finally:
            spent = time.perf_counter() - began
            if isinstance(store, backends.ChdbStore):
                CLOCK["decode"] += spent - (CLOCK["engine"] - engine_before)
            else:
                CLOCK["engine"] += spent
                QUERIES.append((spent, sql))

    type(store).rows = timed_rows
    render = renderers.ExactJSONRenderer.render

    def timed_render(self, data, accepted_media_type=None, renderer_context=None):
        began = time.perf_counter()
        try:
            return render(self, data, accepted_media_type, renderer_context)
        finally:
            CLOCK["render"] += time.perf_counter() - began

    renderers.ExactJSONRenderer.render = timed_render

    def timed_db(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            CLOCK["db"] += time.perf_counter() - began

    from django.core.signals import request_started

    def wrap(**_kwargs):
        for connection in connections.all():
            if timed_db not in connection.execute_wrappers:
                connection.execute_wrappers.append(timed_db)

    request_started.connect(wrap, weak=False)
    wrap()


PARTS = ("engine", "decode", "db", "render")


def profile_requests(client, path: str, params: dict, *, warmup: int, requests: int,
                     ) -> tuple[dict[str, float], int, dict[str, list[float]]]:
    """GET `path` warmup + requests times through a Django test client, with probe_store()'s
    probes on: the medians of each part (ms; "python" is the rest of the wall time, "queries"
    their number), the response's size, and each event-store query's times (ms, by its SQL's
    first 90 characters)."""
    samples: dict[str, list[float]] = defaultdict(list)
    slowest: dict[str, list[float]] = defaultdict(list)
    for i in range(warmup + requests):
        CLOCK.clear()
        QUERIES.clear()
        began = time.perf_counter()
        response = client.get(path, params)
        total = time.perf_counter() - began
        assert response.status_code == 200, response.content[:300]
        if i < warmup:
            continue
        samples["total"].append(total * 1000)
        for part in PARTS:
            samples[part].append(CLOCK[part] * 1000)
        samples["python"].append((total - sum(CLOCK[part] for part in PARTS)) * 1000)
        samples["queries"].append(len(QUERIES))
        for spent, sql in QUERIES:
            slowest[" ".join(sql.split())[:90]].append(spent * 1000)
    med = {part: statistics.median(values) for part, values in samples.items()}
    return med, len(response.content), slowest
