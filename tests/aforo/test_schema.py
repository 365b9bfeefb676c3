"""The engine helper: MergeTree on one node, ReplicatedMergeTree + Distributed on a cluster."""
import importlib

from aforo.eventstore.schema import Topology, create_table

ledger_migration = importlib.import_module("aforo.eventstore.migrations.0001_ledger")


def test_single_node_ledger_is_a_monthly_partitioned_merge_tree():
    (ddl,) = ledger_migration.statements(Topology(database="aforo"))
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS ledger (")
    assert "ENGINE = MergeTree() PARTITION BY toYYYYMM(occurred_at)" in ddl
    assert "ORDER BY (tenant_id, occurred_at, event_id)" in ddl
    assert "ON CLUSTER" not in ddl and "Replicated" not in ddl


def test_cluster_ledger_is_replicated_behind_a_distributed_table():
    local, distributed = ledger_migration.statements(Topology(database="aforo", cluster="prod"))
    assert local.startswith("CREATE TABLE IF NOT EXISTS ledger_local ON CLUSTER prod (")
    assert ("ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/aforo/ledger_local', "
            "'{replica}') PARTITION BY toYYYYMM(occurred_at)") in local
    assert distributed == (
        "CREATE TABLE IF NOT EXISTS ledger ON CLUSTER prod AS ledger_local "
        "ENGINE = Distributed(prod, aforo, ledger_local, sipHash64(tenant_id))"
    )


def test_summing_engines_keep_their_arguments_when_replicated():
    local, _ = create_table(Topology(database="db", cluster="c"), "daily", "x Int64",
                            order_by="x", engine="SummingMergeTree", engine_args="(x)")
    assert "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/db/daily_local', " \
           "'{replica}', (x))" in local
