"""Ingest throughput: events/s through POST /api/v1/events from 4 concurrent clients, against
the engine's own insert rate for the same rows, measured in the same run.

Runs the production web server (uvicorn, as the Procfile does: 2 workers in server mode, 1 in
the embedded mode, where one process owns chdb) in a subprocess, in the embedded mode and in
server mode (PostgreSQL, Redis, a private ClickHouse server), with 1,000-event batches, dedupe
on and every event acknowledged only after its insert. Then the reference: the ledger rows
Aforo wrote, exported in the engine's Native format and inserted straight back into a plain
MergeTree copy of the ledger (no materialized views) by the engine itself (clickhouse-client
for the server, chdb for the embedded mode). The ratio is Aforo's events/s over that.

    .venv/bin/python benchmarks/ingest.py [--events 200000] [--clients 4] [--workers 2]
        [--batches 1000,100] [--modes embedded,server]

With `--credits` it measures what entitlements and wallets cost ingest instead: two tenants on
the same server, one with nothing and one whose every customer has a TOKENS entitlement and a
prepaid wallet (so each batch's debits are split before the insert and its customers' states
recomputed and published after it, in the request), sent to in alternating rounds, each against
the same engine reference.

    .venv/bin/python benchmarks/ingest.py --credits --events 50000 --modes server

With `--sustain SECONDS` (server mode) the clients send fresh 1,000-event batches without pause
for that long, while a thread samples the ClickHouse server's parts every 10 s: the most
active parts in any one partition of any table (18.16 refuses inserts with "too many parts"
at 300, `parts_to_throw_insert`, and delays them from 150), the active parts in all and the
merges running. It shows whether merges keep up with ingest at its sustained rate.

    .venv/bin/python benchmarks/ingest.py --sustain 300 --modes server
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
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, ClickHouseServer, free_port, record, uvicorn_serve  # noqa: E402

PY = sys.executable


def _bodies(total: int, batch: int, run: str) -> list[bytes]:
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    models = [("OpenAI", "gpt-4o"), ("Anthropic", "claude-sonnet-4-6"),
              ("Google", "gemini-2.5-pro")]
    bodies = []
    for start in range(0, total, batch):
        events = []
        for n in range(start, min(start + batch, total)):
            provider, model = models[n % 3]
            events.append({"eventId": f"{run}-{n}", "occurredAt": now,
                           "customerId": f"cust_{n % 500}", "productId": f"prod_{n % 12}",
                           "productType": "API_WITH_AI", "provider": provider, "model": model,
                           "sourceType": "GATEWAY", "inputTokens": 800 + n % 400,
                           "outputTokens": 200 + n % 150, "cachedInputTokens": n % 100})
        bodies.append(json.dumps({"events": events}).encode())
    return bodies


def _send_all(port: int, token: str, tenant: str, bodies: list[bytes], clients: int) -> float:
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant,
                   "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            if response.status != 200:
                failures.append((response.status, payload[:200]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, first: {failures[0]}")
    return elapsed


def _send_for(port: int, token: str, tenant: str, seconds: float, clients: int,
              sample) -> tuple[int, float, dict[int, int]]:
    """Fresh 1,000-event batches from `clients` threads for `seconds`; `sample()` every 10 s.
    Returns (events accepted, seconds, {status: responses} of the non-200 answers)."""
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))
    lock = threading.Lock()
    sent = [0]
    refused: dict[int, int] = {}
    run = uuid.uuid4().hex[:6]

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant,
                   "Content-Type": "application/json"}
        while time.perf_counter() < stop:
            with lock:
                n = next(counter)
            body = _bodies(1000, 1000, f"sustain-{run}-{n}")[0]
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                if response.status == 200:
                    sent[0] += 1000
                else:
                    refused[response.status] = refused.get(response.status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while time.perf_counter() < stop:
        sample(time.perf_counter() - started, sent[0])
        time.sleep(max(0.0, min(10.0, stop - time.perf_counter())))
    for t in threads:
        t.join()
    return sent[0], time.perf_counter() - started, refused


def _parts_now(server: ClickHouseServer, database: str) -> tuple[int, str, int, int]:
    """(the most active parts of one partition, its table, active parts in all, merges)."""
    out = subprocess.run(
        ["clickhouse-client", "--port", str(server.port), "--query",
         f"SELECT (SELECT max(n) FROM (SELECT count() AS n FROM system.parts WHERE database = "
         f"'{database}' AND active GROUP BY table, partition)), (SELECT argMax(table, n) FROM "
         f"(SELECT table, count() AS n FROM system.parts WHERE database = '{database}' AND "
         f"active GROUP BY table, partition)), (SELECT count() FROM system.parts WHERE "
         f"database = '{database}' AND active), (SELECT count() FROM system.merges WHERE "
         f"database = '{database}') FORMAT TSV"],
        check=True, capture_output=True, text=True).stdout.split("\t")
    return int(out[0]), out[1], int(out[2]), int(out[3])


def sustain(args, workdir: Path) -> list[str]:
    """Server mode, `args.sustain` seconds of ingest without pause, parts sampled."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL")}
    env.update(AFORO_VAR_DIR=str(workdir / "sustain"), LOG_LEVEL="ERROR")
    db = f"aforo_bench_{uuid.uuid4().hex[:6]}"
    with ClickHouseServer(workdir / "clickhouse") as server:
        env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db}",
                   REDIS_URL=args.redis, CLICKHOUSE_URL=server.url("aforo_bench"),
                   CONN_MAX_AGE="60")
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                        f"CREATE DATABASE {db}"], check=True, capture_output=True)
        try:
            _manage(env, "migrate", "-v0")
            _manage(env, "shell", "-v", "0", "-c", "from aforo.tenancy import tenant_create; "
                    "tenant_create(slug='bench', name='Bench')")
            token = _manage(env, "create_api_token", "--tenant", "bench", "--role",
                            "DEVELOPER").strip()
            port = free_port()
            proc = uvicorn_serve(env, port, args.workers)
            samples = []

            def sample(at: float, accepted: int) -> None:
                samples.append((at, accepted, *_parts_now(server, "aforo_bench"),
                                os.getloadavg()[0]))

            try:
                accepted, elapsed, refused = _send_for(port, token, "bench", args.sustain,
                                                       args.clients, sample)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            sample(elapsed, accepted)
            time.sleep(30)  # merges after the load
            sample(elapsed + 30, accepted)
        finally:
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                            f"DROP DATABASE IF EXISTS {db}"], capture_output=True)
    lines = [f"{args.sustain} s of 1,000-event batches from {args.clients} clients, "
             f"{args.workers} uvicorn workers, dedupe on: **{accepted:,} events accepted, "
             f"{accepted / elapsed:,.0f} events/s**; refused: "
             f"{', '.join(f'{n} x {status}' for status, n in sorted(refused.items())) or 'none'}"
             f". Peak active parts in one partition: **{max(s[2] for s in samples)}** "
             f"(18.16 delays inserts from 150 and refuses them at 300).", "",
             "| at s | events accepted | most active parts in one partition (table) "
             "| active parts, all tables | merges running | load (1 min) |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {at:.0f} | {n:,} | {peak} ({table}) | {total} | {merges} | {load:.1f} |"
              for at, n, peak, table, total, merges, load in samples]
    return lines


def _manage(env: dict, *args: str) -> str:
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def _raw_server(server: ClickHouseServer, database: str) -> tuple[int, float]:
    """The engine's own insert of the ledger rows Aforo wrote: Native out, Native back in."""
    client = ["clickhouse-client", "--port", str(server.port), "--database", database]
    subprocess.run([*client, "--query", "CREATE TABLE raw_ledger AS ledger"], check=True)
    dump = subprocess.run([*client, "--query", "SELECT * FROM ledger FORMAT Native"],
                          check=True, capture_output=True).stdout
    started = time.perf_counter()
    subprocess.run([*client, "--query", "INSERT INTO raw_ledger FORMAT Native"], input=dump,
                   check=True)
    elapsed = time.perf_counter() - started
    rows = int(subprocess.run([*client, "--query", "SELECT count() FROM raw_ledger"],
                              check=True, capture_output=True, text=True).stdout)
    return rows, elapsed


def _raw_embedded(env: dict, workdir: Path) -> tuple[int, float]:
    """The same with chdb, in a process of its own once the server has released the store."""
    native = workdir / "ledger.native"
    code = f"""
import time
from chdb import session
s = session.Session({str(Path(env["AFORO_VAR_DIR"]) / "chdb")!r})
s.query("USE aforo")
s.query("CREATE TABLE raw_ledger AS ledger")
s.query("SELECT * FROM ledger INTO OUTFILE {str(native)!r} FORMAT Native")
started = time.perf_counter()
s.query("INSERT INTO raw_ledger SELECT * FROM file({str(native)!r}, Native)")
elapsed = time.perf_counter() - started
print(s.query("SELECT count() FROM raw_ledger", "CSV").bytes().decode().strip(), elapsed)
s.close()
"""
    out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True)
    rows, elapsed = out.stdout.split()[-2:]
    return int(rows), float(elapsed)


def _parts(server: ClickHouseServer, database: str) -> str:
    out = subprocess.run(
        ["clickhouse-client", "--port", str(server.port), "--query",
         f"SELECT table, count() FROM system.parts WHERE database = '{database}' AND active "
         "GROUP BY table ORDER BY table FORMAT TSV"],
        check=True, capture_output=True, text=True).stdout
    return ", ".join(f"{t} {n}" for t, n in (line.split("\t") for line in out.splitlines()))


# The tenant with credits: each of the 500 customers the bodies name gets a monthly TOKENS
# entitlement (never reached) and a prepaid wallet at 1 credit per 1,000 tokens (never empty).
CREDITS_SETUP = """
from decimal import Decimal
from aforo.tenancy import tenant_create
from entitlements.services import entitlement_create, top_up_create, wallet_create
tenant = tenant_create(slug='benchc', name='Bench credits')
for n in range(500):
    entitlement_create(tenant=tenant, customer_id=f'cust_{n}', feature='TOKENS',
                       limit=Decimal(10**12), overage='BLOCK')
    wallet, _w = wallet_create(tenant=tenant, customer_id=f'cust_{n}', name='Prepaid',
                               credit_value_usd=Decimal('0.01'), burn_rates=[
                                   {'feature': 'TOKENS', 'creditsPerUnit': '0.001'}])
    top_up_create(wallet=wallet, paid_credits=Decimal(10**9), idempotency_key='seed')
"""


def _alternating(port: int, tokens: dict[str, str], args, mode: str) -> list[tuple]:
    """Rounds of the same bodies' shape to the tenant without credits, then to the one with
    them (then the other way round), 1,000-event batches; (variant, events, seconds) summed."""
    rounds = 4
    per_round = args.events // (2 * rounds)
    tenant_of = {"none": "bench", "credits": "benchc"}
    totals = {"none": [0, 0.0], "credits": [0, 0.0]}
    for variant in tokens:  # warm up each (a cold cache publishes once)
        _send_all(port, tokens[variant], tenant_of[variant],
                  _bodies(4000, 1000, f"{mode}-warm-{variant}-{uuid.uuid4().hex[:6]}"),
                  args.clients)
    for r in range(rounds):
        order = ("none", "credits") if r % 2 == 0 else ("credits", "none")
        for variant in order:
            bodies = _bodies(per_round, 1000, f"{mode}-{variant}-{r}-{uuid.uuid4().hex[:6]}")
            elapsed = _send_all(port, tokens[variant], tenant_of[variant], bodies,
                                args.clients)
            totals[variant][0] += per_round
            totals[variant][1] += elapsed
    return [(variant, sent, elapsed) for variant, (sent, elapsed) in totals.items()]


def run_mode(mode: str, args, workdir: Path) -> tuple[list[str], list[str]]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL")}
    env.update(AFORO_VAR_DIR=str(workdir / mode), LOG_LEVEL="ERROR")
    lines, notes = [], []
    server = None
    if mode == "server":
        server = ClickHouseServer(workdir / "clickhouse").__enter__()
        db = f"aforo_bench_{uuid.uuid4().hex[:6]}"
        env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db}",
                   REDIS_URL=args.redis, CLICKHOUSE_URL=server.url("aforo_bench"),
                   CONN_MAX_AGE="60")
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c",
                        f"CREATE DATABASE {db}"], check=True, capture_output=True)
    try:
        _manage(env, "migrate", "-v0")
        _manage(env, "shell", "-v", "0", "-c", "from aforo.tenancy import tenant_create; "
                "tenant_create(slug='bench', name='Bench')")
        token = _manage(env, "create_api_token", "--tenant", "bench", "--role",
                        "DEVELOPER").strip()
        port = free_port()
        workers = args.workers if mode == "server" else 1  # embedded: one process owns chdb
        if args.credits:
            _manage(env, "shell", "-v", "0", "-c", CREDITS_SETUP)
            tokens = {"none": token, "credits": _manage(
                env, "create_api_token", "--tenant", "benchc", "--role", "DEVELOPER").strip()}
        proc = uvicorn_serve(env, port, workers)
        measured = []
        try:
            if args.credits:
                measured = _alternating(port, tokens, args, mode)
            for batch in (int(b) for b in args.batches.split(",") if not args.credits):
                total = args.events if batch == 1000 else args.events // 4
                bodies = _bodies(total, batch, f"{mode}-{batch}-{uuid.uuid4().hex[:6]}")
                _send_all(port, token, "bench", bodies[:4], args.clients)  # warm up
                elapsed = _send_all(port, token, "bench", bodies[4:], args.clients)
                sent = total - 4 * batch
                measured.append((batch, sent, elapsed))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        if mode == "server":
            rows, raw_elapsed = _raw_server(server, "aforo_bench")
            notes.append(f"server parts after the run (active): {_parts(server, 'aforo_bench')}")
        else:
            rows, raw_elapsed = _raw_embedded(env, workdir)
        raw_rate = rows / raw_elapsed
        for batch, sent, elapsed in measured:
            rate = sent / elapsed
            if args.credits:
                lines.append(f"| {mode} | {batch} | {sent:,} | {elapsed:.2f} s | "
                             f"**{rate:,.0f}** | {raw_rate:,.0f} | {rate / raw_rate:.3f} |")
                continue
            lines.append(f"| {mode} | {workers} | {batch} | {args.clients} | {sent:,} | "
                         f"{elapsed:.2f} s | **{rate:,.0f}** | {raw_rate:,.0f} "
                         f"({rows:,} rows in {raw_elapsed:.2f} s) | {rate / raw_rate:.3f} |")
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return lines, notes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2,
                        help="uvicorn workers in server mode")
    parser.add_argument("--batches", default="1000", help="batch sizes, comma-separated")
    parser.add_argument("--modes", default="embedded,server")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--note", default="", help="a line about the machine's load")
    parser.add_argument("--credits", action="store_true",
                        help="entitlements and wallets in play against none, alternating")
    parser.add_argument("--sustain", type=int, default=0, metavar="SECONDS",
                        help="server mode: ingest without pause this long, parts sampled")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aforo-bench-"))
    if args.sustain:
        load_before = os.getloadavg()[0]
        try:
            lines = sustain(args, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        lines.append(f"\n- load average (1 min) before / after: {load_before:.1f} / "
                     f"{os.getloadavg()[0]:.1f}{' ' + args.note if args.note else ''}")
        record("Sustained ingest and the server's parts (benchmarks/ingest.py --sustain)", lines)
        return
    if args.credits:
        title = "What entitlements and wallets cost ingest (benchmarks/ingest.py --credits)"
        lines = ["| mode | tenant's credits | events | time | Aforo events/s "
                 "| engine's raw insert, rows/s | ratio |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
    else:
        title = "Ingest throughput against the engine's raw insert (benchmarks/ingest.py)"
        lines = ["| mode | web processes | batch | clients | events | time | Aforo events/s "
                 "| engine's raw insert, rows/s | ratio |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    notes = []
    load_before = os.getloadavg()[0]
    try:
        for mode in args.modes.split(","):
            mode_lines, mode_notes = run_mode(mode, args, workdir)
            lines += mode_lines
            notes += mode_notes
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    notes.append(f"load average (1 min) before / after: {load_before:.1f} / "
                 f"{os.getloadavg()[0]:.1f}{' ' + args.note if args.note else ''}")
    record(title, lines + [""] + [f"- {n}" for n in notes])


if __name__ == "__main__":
    main()
