"""Private Redis and PostgreSQL servers a test may kill and restart (the shared ones stay up).

Each runs on a free loopback port with its data in a temporary folder, like the private
ClickHouse server of tests/clickhouse_server.py.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.clickhouse_server import _free_port


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class PrivateRedis:
    """redis-server on a free port, no persistence: a restart forgets every key, as a Redis
    without AOF does after a crash."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="aforo-redis-")
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port)

    def stop(self) -> None:
        """The server dies at once (SIGKILL), as when its machine fails."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb) on a free port; `stop` is an immediate
    shutdown (every backend killed, no checkpoint: a crash), `start` recovers it."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="aforo-pg-"))
        self.data = self.dir / "data"
        self._as = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            shutil.chown(self.dir, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as, *cmd], check=True, capture_output=True)

    def init(self) -> None:
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        # fsync and full-page writes guard against the machine's crash, which `stop` does not
        # simulate, so they are off for speed. synchronous_commit stays on, as in production:
        # off, a commit is acknowledged before its WAL leaves shared memory, and `stop` loses
        # the last few hundred ms of acknowledged commits (a test's new tenant and token).
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-w", "-l",
                  str(self.dir / "server.log"), "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c full_page_writes=off",
                  "start")
        _wait_for_port(self.port)

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        pidfile = self.data / "postmaster.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGQUIT)
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def copy_database(self, *, host: str, port: int, user: str, name: str) -> None:
        """The schema and rows of database `name` on another server, as `name` here."""
        dump = subprocess.run([_pg_bin("pg_dump"), "-h", host, "-p", str(port), "-U", user,
                               "--no-owner", "--no-privileges", name],
                              check=True, capture_output=True).stdout
        psql = _pg_bin("psql")
        base = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q",
                "-v", "ON_ERROR_STOP=1"]
        subprocess.run([*base, "-d", "postgres", "-c", f'CREATE DATABASE "{name}"'],
                       check=True, capture_output=True)
        subprocess.run([*base, "-d", name], input=dump, check=True, capture_output=True)


@pytest.fixture
def private_redis():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed; `make test` installs it")
    server = PrivateRedis()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def private_postgres():
    if not _pg_bin("initdb") or not _pg_bin("pg_ctl"):
        pytest.skip("PostgreSQL's initdb is not installed; `make test` installs it")
    server = PrivatePostgres()
    server.init()
    server.start()
    yield server
    server.remove()
