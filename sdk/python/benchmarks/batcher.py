"""The SDK's figures: the batcher's throughput to a local server that answers at once, and the
caller's added latency per metered call (a wrapped OpenAI client whose `create` returns a
ready response, so only the SDK's own work is timed; the guard is not called).

    .venv/bin/python sdk/python/benchmarks/batcher.py [--events 300000] [--calls 200000]

The sink runs in its own process (asyncio, keep-alive HTTP/1.1) so it does not share the
interpreter lock with the client; it counts the events it received.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[3]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
FIXTURE = REPO.parent / "shared" / "reference" / "events" / "provider_response_fixtures" / \
    "openai_native" / "04_cache_call2_chat.json"

SINK = textwrap.dedent("""
    import asyncio, sys
    received = 0
    async def serve(reader, writer):
        global received
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                if head.startswith(b"GET /count"):
                    answer = str(received).encode()
                else:
                    n = body.count(b'"eventId"')
                    received += n
                    answer = b'{"accepted":%d,"duplicates":0,"rejected":0,"results":[]}' % n
                writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                             b"Content-Length: %d\\r\\n\\r\\n" % len(answer) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionResetError):
            writer.close()
    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def received(port: int) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/count", body=b"")
    return int(conn.getresponse().read())


def percentile(sorted_values: list[int], pct: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


def throughput(url: str, port: int, n: int, batch_size: int) -> dict:
    from aforo_sdk import Aforo

    client = Aforo(url, "tok", "bench", batch_size=batch_size, max_queue=n + 1,
                   flush_interval=0.05, default=False)
    before = received(port)
    event = {"customerId": "cust_1", "productId": "prod_chat", "provider": "openai",
             "model": "gpt-4o-mini-2024-07-18", "inputTokens": 3819, "outputTokens": 20,
             "cachedInputTokens": 3712, "latencyMs": 412, "occurredAt": "2026-12-02T02:00:00Z"}
    start = time.perf_counter()
    for i in range(n):
        client.record({"eventId": f"openai:chatcmpl-{i}", **event})
    queued = time.perf_counter() - start
    assert client.flush(timeout=120)
    elapsed = time.perf_counter() - start
    client.close()
    got = received(port) - before
    assert got == n, (got, n)
    return {"events": n, "batch": batch_size, "seconds": elapsed, "rate": n / elapsed,
            "record_rate": n / queued, "requests": client.stats.requests}


def added_latency(url: str, calls: int) -> dict:
    from aforo_sdk import Aforo, meter
    from openai import OpenAI
    from openai.types.chat import ChatCompletion

    response = ChatCompletion.model_validate(json.loads(FIXTURE.read_text())["_response"])
    raw = OpenAI(api_key="sk-bench", base_url="http://127.0.0.1:9/v1")
    raw.chat.completions.create = lambda **kwargs: response  # no provider: only the SDK is timed
    aforo = Aforo(url, "tok", "bench", max_queue=calls + 1, default=False)
    wrapped = meter.wrap(raw, aforo=aforo, product="prod_chat", customer="cust_1")
    clock = time.perf_counter_ns
    timings = {}
    for name, client in (("raw", raw), ("wrapped", wrapped)):
        for _ in range(2000):  # warm up
            client.chat.completions.create(model="gpt-4o-mini", messages=[])
        values = []
        for _ in range(calls):
            t0 = clock()
            client.chat.completions.create(model="gpt-4o-mini", messages=[])
            values.append(clock() - t0)
        values.sort()
        timings[name] = values
    assert aforo.flush(timeout=120)
    aforo.close()
    assert aforo.stats.dropped == 0
    raw_t, wrapped_t = timings["raw"], timings["wrapped"]
    return {"calls": calls,
            **{f"{n}_p{p}": percentile(v, p) / 1000 for n, v in timings.items()
               for p in (50, 99, 99.9)},
            "added_p50": (percentile(wrapped_t, 50) - percentile(raw_t, 50)) / 1000,
            "added_p99": (percentile(wrapped_t, 99) - percentile(raw_t, 50)) / 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        runs = [throughput(url, port, args.events, size) for size in (500, 1000)]
        latency = added_latency(url, args.calls)
    finally:
        sink.terminate()
        sink.wait()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Python SDK: batcher throughput and the caller's added latency "
             f"(sdk/python/benchmarks/batcher.py) — {when}", "",
             f"Machine: {os.cpu_count()} cores ({platform.machine()}), Python "
             f"{platform.python_version()}; a local sink in its own process that answers at "
             f"once. Other sessions shared the two cores.", "",
             "| batch size | events | seconds | events/s sent | events/s recorded | requests |",
             "| --- | --- | --- | --- | --- | --- |"]
    for run in runs:
        lines.append(f"| {run['batch']} | {run['events']:,} | {run['seconds']:.2f} | "
                     f"{run['rate']:,.0f} | {run['record_rate']:,.0f} | {run['requests']} |")
    lines += ["", f"Caller's latency per call over {latency['calls']:,} calls (µs), an OpenAI "
              f"client whose `create` returns a ready `ChatCompletion`; `meter.wrap` reads "
              f"its usage, builds the event and queues it while the batcher sends:", "",
              "| | p50 | p99 | p99.9 |", "| --- | --- | --- | --- |",
              f"| raw client | {latency['raw_p50']:.1f} | {latency['raw_p99']:.1f} | "
              f"{latency['raw_p99.9']:.1f} |",
              f"| wrapped client | {latency['wrapped_p50']:.1f} | {latency['wrapped_p99']:.1f} "
              f"| {latency['wrapped_p99.9']:.1f} |", "",
              f"Added by the SDK: {latency['added_p50']:.1f} µs at the median, "
              f"{latency['added_p99']:.1f} µs at the p99 (wrapped p99 − raw p50); target "
              f"< 50 µs p99. Target ≥ 20,000 events/s sent.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with RESULTS.open("a") as handle:
            handle.write("\n" + text + "\n")


if __name__ == "__main__":
    main()
