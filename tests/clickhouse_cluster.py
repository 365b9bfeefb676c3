"""The ClickHouse test cluster (2 shards x 2 replicas, scripts/clickhouse-test-cluster) as a
pytest backend: started once for the run by the first test that asks for it, stopped at the end.

If ZooKeeper (or a node) cannot start, every cluster test skips with the reason, and the run's
summary says so.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from django.conf import settings

from aforo.eventstore import ServerStore

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "clickhouse-test-cluster"
NAME = "aforo_test"
DATABASE = "aforo_cluster"  # every node's default database (see the script's :TRICKY:)
# Nodes 1, 2 hold shard 01; 3, 4 hold shard 02. The app talks to node 1, then the others.
SHARDS = {1: (1, 2), 2: (3, 4)}


class TestCluster:
    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.dir = str(settings.VAR_DIR / "clickhouse-cluster")
        self.env = {**os.environ, "CH_CLUSTER_DIR": self.dir, "CH_CLUSTER_NAME": NAME,
                    "CH_CLUSTER_DATABASE": DATABASE}
        self.ports: dict[int, int] = {}
        self.skip_reason = ""

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True,
                              text=True, timeout=300)

    def start(self) -> TestCluster:
        done = self._run("start")
        if done.returncode != 0:
            what = "ZooKeeper could not start" if done.returncode == 3 else "it did not start"
            self.skip_reason = (f"ClickHouse test cluster skipped: {what} "
                                f"({(done.stderr or done.stdout).strip()[:300]})")
            return self
        values = dict(line.split("=", 1) for line in self._run("env").stdout.split())
        self.ports = {n: int(values[f"CH_CLUSTER_NODE{n}_PORT"]) for n in (1, 2, 3, 4)}
        return self

    @property
    def up(self) -> bool:
        return bool(self.ports)

    def url(self, node: int = 1) -> str:
        return f"clickhouse://default@127.0.0.1:{self.ports[node]}/{DATABASE}"

    def store(self, node: int = 1) -> ServerStore:
        """The app's view: the cluster's Distributed tables through `node` (the others as
        alternatives when it is down)."""
        alt = ",".join(f"127.0.0.1:{self.ports[n]}" for n in (1, 2, 3, 4) if n != node)
        return ServerStore(self.url(node), cluster=NAME, alt_hosts=alt)

    def node_store(self, node: int) -> ServerStore:
        """One node by itself (no cluster settings): to look at what that replica holds."""
        return ServerStore(self.url(node))

    def kill_node(self, node: int) -> None:
        self._run("kill-node", str(node)).check_returncode()

    def start_node(self, node: int) -> None:
        self._run("start-node", str(node)).check_returncode()

    def stop(self) -> None:
        self._run("stop")
