"""The ClickHouse cluster (2 shards x 2 replicas on this machine) against one ClickHouse server,
in the same run: a bulk load of one tenant's events, exactly-once ingest, and dashboard
endpoints end to end (Django test client). Figures are appended to benchmarks/RESULTS.md as
cluster / single-server ratios.

    .venv/bin/python benchmarks/cluster.py                 # 1,000,000 events
    .venv/bin/python benchmarks/cluster.py --events 200000 --no-write

On one machine the cluster cannot be faster: its four servers and ZooKeeper share the same
cores, and every write is made twice (quorum 2). What it measures is the price of the cluster's
guarantees (synchronous, quorum writes; reads fanned out over shards), and that one tenant's
events spread evenly over the shards.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--ingest-events", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--requests", type=int, default=15)
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-cluster"))
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args()


ARGS = parse_args()
os.environ["AFORO_VAR_DIR"] = ARGS.var_dir
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
for name in ("CLICKHOUSE_URL", "CLICKHOUSE_CLUSTER", "DATABASE_URL", "REDIS_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from aforo import eventstore  # noqa: E402
from aforo.eventstore import ServerStore  # noqa: E402
from aforo.eventstore.migrate import migrate_eventstore  # noqa: E402
from aforo.models import Role  # noqa: E402
from aforo.tenancy import api_token_create, tenant_create  # noqa: E402
from benchmarks.common import ClickHouseServer, machine, record  # noqa: E402
from ingestion.services import events_ingest_dicts  # noqa: E402

CLUSTER_SCRIPT = ROOT / "scripts" / "clickhouse-test-cluster"
CHUNK = 50_000  # a statement must finish within the client timeout on a loaded machine
BULK = """
INSERT INTO ledger (tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at,
                    recorded_at, customer_id, product_id, product_type, provider, model,
                    source_type, event_count, input_tokens, output_tokens, ai_cogs_usd,
                    infra_cogs_usd, cost_source)
SELECT %(tenant)s, concat('entry_', toString(number)), 'COST', 'ORIGINAL',
       concat('evt_', toString(number)),
       toDateTime(%(start)s + modulo(cityHash64(number, 1), %(span)s), 'UTC'), now(),
       concat('cust_', toString(modulo(cityHash64(number, 2), 1000))),
       concat('prod_', toString(modulo(cityHash64(number, 3), 20))), 'API_WITH_AI',
       arrayElement(['OpenAI', 'Anthropic', 'Google', 'AWS Bedrock'],
                    modulo(cityHash64(number, 4), 4) + 1),
       concat('model_', toString(modulo(cityHash64(number, 4), 16))), 'GATEWAY', 1,
       toInt64(100 + modulo(cityHash64(number, 5), 4000)),
       toInt64(20 + modulo(cityHash64(number, 6), 1000)),
       toDecimal64(modulo(cityHash64(number, 7), 100000), 9) / 1000000000,
       toDecimal64(400000, 9) / 1000000000, 'CARRIED'
FROM numbers(%(offset)s, %(count)s)
"""
ENDPOINTS = ["", "/trends", "/by-product", "/by-customer?limit=100", "/by-model",
             "/transactions"]


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Cluster:
    def __init__(self, directory: Path) -> None:
        self.env = {**os.environ, "CH_CLUSTER_DIR": str(directory)}

    def __enter__(self) -> Cluster:
        subprocess.run([str(CLUSTER_SCRIPT), "start"], env=self.env, check=True)
        values = dict(line.split("=", 1) for line in subprocess.run(
            [str(CLUSTER_SCRIPT), "env"], env=self.env, check=True, capture_output=True,
            text=True).stdout.split())
        self.ports = {n: int(values[f"CH_CLUSTER_NODE{n}_PORT"]) for n in (1, 2, 3, 4)}
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run([str(CLUSTER_SCRIPT), "stop"], env=self.env, check=False)

    def store(self) -> ServerStore:
        alt = ",".join(f"127.0.0.1:{self.ports[n]}" for n in (2, 3, 4))
        return ServerStore(f"clickhouse://default@127.0.0.1:{self.ports[1]}/aforo_cluster",
                           cluster="aforo_test", alt_hosts=alt)

    def per_node(self, tenant: str) -> dict[int, int]:
        out = {}
        for node, port in self.ports.items():
            store = ServerStore(f"clickhouse://default@127.0.0.1:{port}/aforo_cluster")
            store.command("SYSTEM SYNC REPLICA ledger_local")
            out[node] = store.query("SELECT count() AS n FROM ledger_local WHERE tenant_id = "
                                    "%(t)s", {"t": tenant})[0]["n"]
            store.close()
        return out


def measure(label: str, store: ServerStore, stamp: str) -> dict:
    eventstore.set_default(store)
    migrate_eventstore(store)
    out: dict = {}
    tenant = tenant_create(slug=f"bench-{label}-{stamp}", name=f"bench {label}")
    end = datetime.now(timezone.utc).replace(microsecond=0)
    start = int((end - timedelta(days=30)).timestamp())
    # Warm-up (first parts, connections) under another tenant, not timed.
    eventstore.command(BULK, {"tenant": f"warm-{label}-{stamp}", "start": start,
                              "span": 30 * 86400, "offset": 0, "count": 10_000})
    t0 = time.perf_counter()
    for offset in range(0, ARGS.events, CHUNK):
        eventstore.command(BULK, {"tenant": tenant.slug, "start": start, "span": 30 * 86400,
                                  "offset": offset, "count": min(CHUNK, ARGS.events - offset)})
    out["bulk_s"] = time.perf_counter() - t0
    # Exactly-once ingest through the service (claims, dedupe read, costing, insert).
    ingest_tenant = tenant_create(slug=f"ingest-{label}-{stamp}", name="ingest")
    now = end
    batches = [[{"eventId": f"i{b}_{i}", "occurredAt": now.isoformat(),
                 "customerId": f"c{i % 50}", "productId": f"p{i % 5}", "cogsUsd": "0.0012"}
                for i in range(ARGS.batch)] for b in range(ARGS.ingest_events // ARGS.batch)]
    t0 = time.perf_counter()
    for batch in batches:
        report = events_ingest_dicts(tenant=ingest_tenant, events=batch, now=now)
        assert report.count("accepted") == len(batch)
    out["ingest_eps"] = ARGS.ingest_events / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for batch in batches[:5]:  # a resend: all duplicates
        assert events_ingest_dicts(tenant=ingest_tenant, events=batch,
                                   now=now).count("duplicate") == len(batch)
    out["resend_eps"] = 5 * ARGS.batch / (time.perf_counter() - t0)
    token = api_token_create(tenant=tenant, role=Role.VIEWER, name="benchmark")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token.raw}", HTTP_X_TENANT_ID=tenant.slug)
    period = {"from": (end - timedelta(days=29)).date().isoformat(),
              "to": end.date().isoformat()}
    for endpoint in ENDPOINTS:
        path, _, query = endpoint.partition("?")
        params = {**period, **dict(p.split("=") for p in query.split("&") if p)}
        samples = []
        for i in range(ARGS.requests + 2):
            t0 = time.perf_counter()
            response = client.get("/api/v1/analytics/cogs/dashboard" + path, params)
            assert response.status_code == 200, response.content[:300]
            if i >= 2:
                samples.append((time.perf_counter() - t0) * 1000)
        out[endpoint or "/"] = (statistics.median(samples), pct(samples, 0.95))
        print(f"{label:>8} {endpoint or '/':<24} p50 {out[endpoint or '/'][0]:7.1f} ms",
              flush=True)
    out["tenant"] = tenant.slug
    eventstore.set_default(None)
    return out


def main() -> None:
    var = Path(ARGS.var_dir)
    var.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    stamp = datetime.now(timezone.utc).strftime("%H%M%S")
    load = os.getloadavg()[0]
    with ClickHouseServer(var / "single") as single, Cluster(var / "cluster") as cluster:
        one = measure("single", ServerStore(single.url("aforo_bench")), stamp)
        many = measure("cluster", cluster.store(), stamp)
        nodes = cluster.per_node(many["tenant"])
    load_after = os.getloadavg()[0]
    lines = [
        f"{ARGS.events:,} events of one tenant over 30 days; ClickHouse 18.16; single = one "
        f"server; cluster = 2 shards x 2 replicas + ZooKeeper on the same 2 cores (quorum 2, "
        f"synchronous distributed inserts). Load average {load:.1f} before, {load_after:.1f} "
        "after: the machine was shared with other engineers' test runs.",
        "",
        f"- one tenant's {ARGS.events:,} events per shard (replicas): shard 1 {nodes[1]:,} "
        f"({nodes[2]:,}), shard 2 {nodes[3]:,} ({nodes[4]:,})",
        "",
        "| measure | single server | cluster | cluster / single |",
        "| --- | --- | --- | --- |",
        f"| bulk load (INSERT ... SELECT, {CHUNK:,} a statement) | {one['bulk_s']:.1f} s | "
        f"{many['bulk_s']:.1f} s | {many['bulk_s'] / one['bulk_s']:.2f} |",
        f"| exactly-once ingest, batches of {ARGS.batch} (events/s, in process) | "
        f"{one['ingest_eps']:,.0f} | {many['ingest_eps']:,.0f} | "
        f"{many['ingest_eps'] / one['ingest_eps']:.2f} |",
        f"| resend of already-counted batches (events/s) | {one['resend_eps']:,.0f} | "
        f"{many['resend_eps']:,.0f} | {many['resend_eps'] / one['resend_eps']:.2f} |",
    ]
    for endpoint in ENDPOINTS:
        key = endpoint or "/"
        (a50, a95), (b50, b95) = one[key], many[key]
        lines.append(f"| dashboard `{key}` 30D p50 / p95 ms | {a50:.1f} / {a95:.1f} | "
                     f"{b50:.1f} / {b95:.1f} | {b50 / a50:.2f} |")
    print(machine())
    if ARGS.no_write:
        print("\n".join(lines))
    else:
        record("ClickHouse cluster (2 shards x 2 replicas) against one server", lines)


if __name__ == "__main__":
    main()
