"""Ingest throughput: events/s through POST /api/v1/events from 4 concurrent clients.

Runs the real web server (daphne, as the Procfile does) in a subprocess, in the embedded mode
and in server mode (PostgreSQL, Redis, a private ClickHouse server), with 1,000-event and
100-event batches, dedupe on and every event acknowledged only after its insert.

    .venv/bin/python benchmarks/ingest.py [--events 200000] [--clients 4] [--workers 1]
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
from benchmarks.common import ROOT, ClickHouseServer, free_port, record  # noqa: E402

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


def _manage(env: dict, *args: str) -> str:
    return subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def _serve(env: dict, port: int, workers: int) -> subprocess.Popen:
    if workers > 1:
        cmd = [PY, "-m", "uvicorn", "aforo.asgi:application", "--port", str(port),
               "--workers", str(workers), "--log-level", "warning"]
    else:
        cmd = [PY, "-m", "daphne", "-p", str(port), "aforo.asgi:application"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    for _ in range(200):
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


def run_mode(mode: str, args, workdir: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CLICKHOUSE_URL")}
    env.update(AFORO_VAR_DIR=str(workdir / mode), LOG_LEVEL="ERROR")
    lines = []
    server = None
    if mode == "server":
        server = ClickHouseServer(workdir / "clickhouse").__enter__()
        db = f"aforo_bench_{uuid.uuid4().hex[:6]}"
        env.update(DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{db}",
                   REDIS_URL="redis://127.0.0.1:6379/14",
                   CLICKHOUSE_URL=server.url("aforo_bench"), CONN_MAX_AGE="60")
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
        proc = _serve(env, port, workers)
        try:
            for batch in (1000, 100):
                total = args.events if batch == 1000 else args.events // 4
                bodies = _bodies(total, batch, f"{mode}-{batch}-{uuid.uuid4().hex[:6]}")
                _send_all(port, token, "bench", bodies[:4], args.clients)  # warm up
                elapsed = _send_all(port, token, "bench", bodies[4:], args.clients)
                sent = total - 4 * batch
                lines.append(f"| {mode} | {workers} | {batch} | {args.clients} | {sent:,} | "
                             f"{elapsed:.2f} s | **{sent / elapsed:,.0f}** |")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2,
                        help="web processes in server mode (uvicorn --workers when > 1)")
    parser.add_argument("--modes", default="embedded,server")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="aforo-bench-"))
    lines = ["| mode | web processes | batch | clients | events | time | events/s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    try:
        for mode in args.modes.split(","):
            lines += run_mode(mode, args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record("Ingest throughput (benchmarks/ingest.py)", lines)


if __name__ == "__main__":
    main()
