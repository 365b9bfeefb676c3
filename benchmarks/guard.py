"""Margin Guard decision latency: in-process (p99 target 20 µs) and over HTTP on loopback at a
paced 1,000 requests/s in server mode with state in Redis (p99 target 2 ms), with every
customer on two entitlements and a prepaid wallet (their state in the decision's mirror).

Over HTTP the decision is also measured against a no-op ASGI app (`benchmarks/noop_asgi.py`)
served the same way (uvicorn, the same workers) and loaded by the same generator, Debian's
`hey` (Go, not Python), paced at the same rate: the figures are the ratios in one run.

    .venv/bin/python benchmarks/guard.py [--seconds 10] [--rate 1000] [--workers 2]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    ClickHouseServer,
    free_port,
    record,
    uvicorn_serve,  # noqa: E402
)
from benchmarks.ingest import _manage  # noqa: E402

SETUP = """
from aforo.tenancy import tenant_create
from margin_guard.models import GuardPolicy, GuardState
from margin_guard import decision
t = tenant_create(slug='bench', name='Bench')
p = GuardPolicy.objects.create(tenant=t, name='floor', scope='TENANT', mode='ENFORCE',
                               downgrade_map={'gpt-4o': 'gpt-4o-mini'}, premium_features=['batch'])
for i in range(1000):
    s = GuardState.objects.create(tenant=t, customer_id=f'c{i}', level=i % 4, mode='ENFORCE',
                                  policy=p)
    decision.profile_store(s, p)
# every customer: a monthly token quota, a per-product event quota, a prepaid wallet
from decimal import Decimal
from entitlements.models import Entitlement, Wallet
from entitlements.services import top_up_create, credits_refresh
from entitlements.config import credit_config_changed
Entitlement.objects.bulk_create(
    [Entitlement(tenant=t, customer_id=f'c{i}', feature='TOKENS', limit=Decimal(10**9))
     for i in range(1000)]
    + [Entitlement(tenant=t, customer_id=f'c{i}', feature='EVENTS', product_id='p1',
                   overage='THROTTLE', downgrade_model='gpt-4o-mini', limit=Decimal(10**6))
       for i in range(1000)])
for w in Wallet.objects.bulk_create([Wallet(
        tenant=t, customer_id=f'c{i}', name='Prepaid', credit_value_usd=Decimal('0.01'),
        burn_rates=[{'feature': 'TOKENS', 'creditsPerUnit': '0.001'}]) for i in range(1000)]):
    top_up_create(wallet=w, paid_credits=Decimal(10**6), idempotency_key='seed', publish=False)
credit_config_changed(t)
credits_refresh(tenant=t)
"""


def percentile(values: list[float], pct: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * pct))]


def in_process(env: dict) -> list[str]:
    code = SETUP.replace("tenant_create(slug='bench'", "tenant_create(slug='bench-ip'") + """
import time
lat = []
for n in range(200_000):
    start = time.perf_counter_ns()
    decision.decide('bench-ip', customer_id=f'c{n % 1000}', product_id='p1', model='gpt-4o',
                    feature='batch')
    lat.append(time.perf_counter_ns() - start)
lat.sort()
print(*(lat[int(len(lat) * q)] / 1000 for q in (0.5, 0.99, 0.999)))
"""
    out = _manage(env, "shell", "-v", "0", "-c", code).strip().splitlines()[-1].split()
    return [f"| in-process `decide()` ({'Redis' if 'REDIS_URL' in env else 'local memory'}) "
            f"| 200,000 calls, 1,000 customers, 2 entitlements and a wallet each "
            f"| {out[0]} µs | {out[1]} µs | {out[2]} µs |"]


CLIENT_PROCESSES = 4


def _client(port: int, token: str, seconds: float, interval: float | None, offset: float,
            n: int, queue) -> None:
    """One client process on one keep-alive connection. Paced (`interval` set): a request every
    `interval` seconds, latency counted from when it was due, so a server that falls behind is
    not hidden. Closed loop (`interval` None): the next request as soon as the last answered."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-Id": "bench",
               "Content-Type": "application/json"}
    out = []
    i = 0
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter() + offset
    while next_at < deadline:
        now = time.perf_counter()
        if interval is not None and now < next_at:
            time.sleep(next_at - now)
        sent = next_at if interval is not None else time.perf_counter()
        body = json.dumps({"customerId": f"c{(i * 7 + n) % 1000}", "productId": "p1",
                           "model": "gpt-4o", "feature": "batch"})
        conn.request("POST", "/api/v1/margin-guard/decide", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        out.append((time.perf_counter() - sent, response.status))
        i += 1
        next_at = next_at + interval if interval is not None else time.perf_counter()
    queue.put(out)


def _load(port: int, token: str, seconds: float, clients: int, rate: int | None):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    interval = clients / rate if rate else None
    procs = [context.Process(target=_client, args=(
        port, token, seconds, interval, (n * interval / clients) if interval else 0, n, queue))
        for n in range(clients)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    results = [item for _ in procs for item in queue.get()]
    for proc in procs:
        proc.join()
    return results, time.perf_counter() - started


def _row(label: str, results, elapsed: float) -> str:
    ms = [latency * 1000 for latency, _status in results]
    statuses: dict[int, int] = {}
    for _latency, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return (f"| {label} | {len(ms):,} requests at {len(ms) / elapsed:,.0f}/s "
            f"(statuses {statuses}) | {percentile(ms, 0.5):.2f} ms | "
            f"{percentile(ms, 0.99):.2f} ms | {percentile(ms, 0.999):.2f} ms |")


def over_http(env: dict, args) -> list[str]:
    port = free_port()
    proc = uvicorn_serve(env, port, args.workers)
    token = _manage(env, "create_api_token", "--tenant", "bench", "--role", "DEVELOPER").strip()
    name = f"HTTP `POST /api/v1/margin-guard/decide`, {args.workers} uvicorn workers, Redis"
    rows = []
    try:
        _load(port, token, 2, CLIENT_PROCESSES, None)  # warm every worker up
        for clients in (1, CLIENT_PROCESSES):
            results, elapsed = _load(port, token, args.seconds, clients, None)
            rows.append(_row(f"{name}, closed loop, {clients} connection(s)", results, elapsed))
        results, elapsed = _load(port, token, args.seconds, CLIENT_PROCESSES, args.rate)
        rows.append(_row(f"{name}, open loop paced at {args.rate}/s from {CLIENT_PROCESSES} "
                         "client processes", results, elapsed))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


HEY_CONNECTIONS = 10


def _hey(port: int, token: str, seconds: float, rate: int) -> list[float]:
    """Latencies (ms) of `hey` paced at `rate` requests/s over HEY_CONNECTIONS connections."""
    body = json.dumps({"customerId": "c7", "productId": "p1", "model": "gpt-4o",
                       "feature": "batch"})
    out = subprocess.run(
        ["hey", "-z", f"{seconds}s", "-c", str(HEY_CONNECTIONS),
         "-q", str(max(1, rate // HEY_CONNECTIONS)), "-m", "POST",
         "-H", f"Authorization: Bearer {token}", "-H", "X-Tenant-Id: bench",
         "-T", "application/json", "-d", body, "-o", "csv",
         f"http://127.0.0.1:{port}/api/v1/margin-guard/decide"],
        check=True, capture_output=True, text=True).stdout
    latencies, statuses = [], {}
    for line in out.splitlines()[1:]:
        cells = line.split(",")
        if len(cells) >= 7:
            latencies.append(float(cells[0]) * 1000)
            statuses[cells[6]] = statuses.get(cells[6], 0) + 1
    return latencies


def against_noop(env: dict, args) -> list[str]:
    """The decision and the no-op app, each served by uvicorn with the same workers, each
    loaded by `hey` at the same pace, one after the other in this run."""
    if not shutil.which("hey"):
        return ["| (hey not installed: `apt-get install hey`) | | | | |"]
    token = _manage(env, "create_api_token", "--tenant", "bench", "--role", "DEVELOPER").strip()
    measured = {}
    for label, app in (("no-op ASGI app", "benchmarks.noop_asgi:application"),
                       ("decision", "aforo.asgi:application")):
        port = free_port()
        proc = uvicorn_serve(env, port, args.workers, app)
        try:
            _hey(port, token, 2, args.rate)  # warm every worker up
            measured[label] = _hey(port, token, args.seconds, args.rate)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    rows = []
    for label, ms in measured.items():
        rows.append(f"| hey paced at {args.rate}/s, {HEY_CONNECTIONS} connections, "
                    f"{args.workers} uvicorn workers: {label} | {len(ms):,} requests "
                    f"| {percentile(ms, 0.5):.2f} ms | {percentile(ms, 0.99):.2f} ms "
                    f"| {percentile(ms, 0.999):.2f} ms |")
    decision, noop = measured["decision"], measured["no-op ASGI app"]
    rows.append(f"| ratio decision / no-op (targets: p50 ≤ 1.5×, p99 ≤ 1.3×) | "
                f"| {percentile(decision, 0.5) / percentile(noop, 0.5):.2f}× "
                f"| {percentile(decision, 0.99) / percentile(noop, 0.99):.2f}× "
                f"| {percentile(decision, 0.999) / percentile(noop, 0.999):.2f}× |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aforo-guard-bench-"))
    lines = ["| path | load | p50 | p99 | p99.9 |", "| --- | --- | --- | --- | --- |"]
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL")}
    try:
        embedded = {**base, "AFORO_VAR_DIR": str(workdir / "embedded"), "LOG_LEVEL": "ERROR"}
        _manage(embedded, "migrate", "-v0")
        lines += in_process(embedded)
        with ClickHouseServer(workdir / "clickhouse") as clickhouse:
            db = f"aforo_guard_{uuid.uuid4().hex[:6]}"
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                            f"CREATE DATABASE {db}"], check=True, capture_output=True)
            server = {**base, "AFORO_VAR_DIR": str(workdir / "server"), "LOG_LEVEL": "ERROR",
                      "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
                      "REDIS_URL": "redis://127.0.0.1:6379/13", "CONN_MAX_AGE": "60",
                      "CLICKHOUSE_URL": clickhouse.url("aforo_guard")}
            try:
                subprocess.run(["redis-cli", "-n", "13", "flushdb"], check=True,
                               capture_output=True)
                _manage(server, "migrate", "-v0")
                _manage(server, "shell", "-v", "0", "-c", SETUP)
                lines += in_process(server)
                lines += over_http(server, args)
                lines += against_noop(server, args)
            finally:  # the run's own database goes with it
                subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                                f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                               capture_output=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record("Margin Guard decision latency (benchmarks/guard.py)", lines)


if __name__ == "__main__":
    main()
