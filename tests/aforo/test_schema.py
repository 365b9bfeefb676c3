"""The engine helper: MergeTree on one node, ReplicatedMergeTree + Distributed on a cluster."""
import importlib

from aforo.eventstore.schema import Topology, create_table

ledger_migration = importlib.import_module("aforo.eventstore.migrations.0001_ledger")
shard_migration = importlib.import_module("aforo.eventstore.migrations.0012_shard_by_event")


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
        "CREATE TABLE IF NOT EXISTS ledger ON CLUSTER prod AS aforo.ledger_local "
        "ENGINE = Distributed(prod, aforo, ledger_local, sipHash64(tenant_id))"
    )


def test_0012_shards_the_ledger_and_its_event_ids_by_tenant_and_event():
    statements = shard_migration.statements(Topology(database="aforo", cluster="prod"))
    assert statements == [
        "DROP TABLE IF EXISTS ledger ON CLUSTER prod",
        "CREATE TABLE IF NOT EXISTS ledger ON CLUSTER prod AS aforo.ledger_local "
        "ENGINE = Distributed(prod, aforo, ledger_local, sipHash64(tenant_id, event_id))",
        "DROP TABLE IF EXISTS ledger_event_ids ON CLUSTER prod",
        "CREATE TABLE IF NOT EXISTS ledger_event_ids ON CLUSTER prod "
        "AS aforo.ledger_event_ids_local ENGINE = Distributed(prod, aforo, "
        "ledger_event_ids_local, sipHash64(tenant_id, event_id))",
    ]
    assert shard_migration.statements(Topology(database="aforo")) == []


def test_altering_a_clustered_table_recreates_its_distributed_table_with_its_key():
    from aforo.eventstore.schema import alter_table

    local, drop, create = alter_table(Topology(database="aforo", cluster="prod"), "ledger",
                                      "ADD COLUMN x String")
    assert local == "/* aforo: per shard */ ALTER TABLE ledger_local ADD COLUMN x String"
    assert drop == "DROP TABLE IF EXISTS ledger ON CLUSTER prod"
    assert create.endswith("Distributed(prod, aforo, ledger_local, sipHash64(tenant_id, event_id))")


def test_summing_engines_keep_their_arguments_when_replicated():
    local, _ = create_table(Topology(database="db", cluster="c"), "daily", "x Int64",
                            order_by="x", engine="SummingMergeTree", engine_args="(x)")
    assert "ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/db/daily_local', " \
           "'{replica}', (x))" in local
