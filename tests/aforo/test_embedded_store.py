"""The embedded store belongs to one process; a second gets one clear line, not a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from aforo.eventstore import ChdbStore\n"
    "store = ChdbStore(sys.argv[1])\n"
    "store.ping()\n"
    "print('holding', flush=True)\n"
    "time.sleep(120)\n"
)


def test_a_second_process_is_told_what_to_do(tmp_path):
    path = str(tmp_path / "chdb")
    env = {k: v for k, v in os.environ.items() if k != "CLICKHOUSE_URL"}
    env.update(CHDB_PATH=path, DATABASE_URL=f"sqlite:///{tmp_path}/db")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, path], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = subprocess.run(
            [sys.executable, "manage.py", "migrate_eventstore"], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=120,
        )
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "already open in another Aforo process" in lines[0]
    assert "CLICKHOUSE_URL" in lines[0]
