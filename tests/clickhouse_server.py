"""A private ClickHouse server a test may stop and restart (the shared one stays up)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "clickhouse-test-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateClickHouse:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="aforo-ch-")
        self.port = _free_port()
        self.env = {**os.environ, "CH_TEST_DIR": self.dir, "CH_TEST_PORT": str(self.port),
                    "CH_TEST_HTTP_PORT": str(_free_port())}

    @property
    def url(self) -> str:
        return f"clickhouse://default@127.0.0.1:{self.port}/aforo_private"

    def start(self) -> None:
        subprocess.run([str(SCRIPT), "start"], env=self.env, check=True, capture_output=True)

    def stop(self) -> None:
        """The server dies at once (SIGKILL), as when its machine fails."""
        subprocess.run([str(SCRIPT), "kill"], env=self.env, check=True, capture_output=True)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_clickhouse():
    if not shutil.which("clickhouse-server") and not Path("/usr/sbin/clickhouse-server").exists():
        pytest.skip("clickhouse-server is not installed; `make test` installs it")
    server = PrivateClickHouse()
    server.start()
    yield server
    server.remove()
