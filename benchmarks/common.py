"""Shared benchmark plumbing: the machine line, RESULTS.md, and a server-mode environment."""
from __future__ import annotations

import http.client
import os
import platform
import socket
import subprocess
import sys
import time
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
