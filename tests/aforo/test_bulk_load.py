"""The benchmarks' bulk load (benchmarks.common.ledger_views_deferred): rows loaded with the
ledger's views detached, then fed to each view once, leave every read model as the views
would have fed it insert by insert."""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from aforo.ledger.entries import ledger_append, ledger_entry
from benchmarks.common import _ledger_views, ledger_views_deferred

START = datetime(2026, 9, 1, tzinfo=timezone.utc)
NANO = Decimal("0.000000001")


def _ledger_rows(tenant_id: str, seed: int) -> list[dict]:
    """Events of every kind the views tell apart, over five days: split and unsplit costs,
    downgraded calls, tools, sessions and agents, wallets' debits, allocations, revenue and
    its settlement, corrections and reversals."""
    rng = random.Random(seed)
    rows = []
    for n in range(rng.randint(20, 60)):
        at = START + timedelta(seconds=rng.randrange(5 * 86400))
        event_id = f"evt_{n}"
        model = rng.choice(["m-small", "m-large"])
        dims = dict(customer_id=f"cust_{rng.randrange(4)}", product_id=f"prod_{rng.randrange(3)}",
                    product_type="API_WITH_AI", provider="OpenAI", model=model,
                    requested_model=rng.choice(["", "", "m-large"]),
                    tool_name=rng.choice(["", "search"]),
                    session_id=rng.choice(["", "s1", "s2"]), agent=rng.choice(["", "planner"]),
                    source_type="GATEWAY")
        cost = dict(ai_cogs_usd=Decimal(rng.randrange(1, 10**6)) * NANO,
                    infra_cogs_usd=Decimal(rng.randrange(10**5)) * NANO,
                    input_tokens=rng.randrange(1, 5000), output_tokens=rng.randrange(1000),
                    tool_calls=rng.randrange(3), reasoning_steps=rng.randrange(2))
        source = rng.choice(["NONE", "CARRIED", "RATED"])
        revenue = dict(NONE={}, CARRIED={"carried_revenue_usd": Decimal("0.002")},
                       RATED={"rated_revenue_usd": Decimal("0.001")})[source]
        wallet = ({"credit_wallet_ids": ["w1"], "credit_debits_nano": [rng.randrange(1, 10**6)]}
                  if rng.random() < 0.3 else {})
        rows.append(ledger_entry(
            tenant_id=tenant_id, entry_id=f"cost_{n}", entry_type="COST", event_id=event_id,
            occurred_at=at, recorded_at=at, event_count=1, revenue_source=source,
            allocation_id="alloc_1" if rng.random() < 0.1 else "",
            **dims, **cost, **revenue, **wallet))
        if rng.random() < 0.2:
            rows.append(ledger_entry(
                tenant_id=tenant_id, entry_id=f"corr_{n}", entry_type="COST",
                event_id=event_id, occurred_at=at, recorded_at=at, entry_kind="CORRECTION",
                revenue_source=source, ai_cogs_usd=Decimal("0.000001"), **dims))
        if rng.random() < 0.5:
            rows.append(ledger_entry(
                tenant_id=tenant_id, entry_id=f"rev_{n}", entry_type="REVENUE",
                event_id=event_id, occurred_at=at, recorded_at=at, invoice_id="inv_1",
                revenue_usd=Decimal(rng.randrange(1, 10**7)) * NANO, **dims))
            rows.append(ledger_entry(
                tenant_id=tenant_id, entry_id=f"settle_{n}", entry_type="SETTLE",
                event_id=event_id, occurred_at=at, recorded_at=at, event_count=-1,
                revenue_source=source, **dims,
                **{k: -v for k, v in {**cost, **revenue}.items()}))
            if rng.random() < 0.3:
                rows.append(ledger_entry(
                    tenant_id=tenant_id, entry_id=f"rev_{n}_rev", entry_type="REVENUE",
                    event_id=event_id, occurred_at=at, recorded_at=at, invoice_id="inv_1",
                    entry_kind="REVERSAL", revenue_usd=-rows[-2]["revenue_usd"], **dims))
    return rows


def _contents(store, table: str, tenant_id: str) -> list[tuple]:
    """A read model's rows of one tenant, its parts merged (summing, replacing and
    aggregating alike) and its aggregate states finalized."""
    columns = store.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
        "AND table = %(table)s", {"table": table})
    exprs = [(f"finalizeAggregation({c['name']})" if c["type"].startswith("AggregateFunction")
              else c["name"]) + f" AS c{i}"
             for i, c in enumerate(columns) if c["name"] != "tenant_id"]
    rows = store.query(f"SELECT {', '.join(exprs)} FROM {table} WHERE tenant_id = %(tenant)s",
                       {"tenant": tenant_id})
    return sorted(tuple(str(v) for v in row.values()) for row in rows)


@pytest.mark.django_db
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32), slice_days=st.sampled_from([1, 2, 7]),
       parts=st.integers(1, 3))
def test_a_deferred_load_feeds_every_read_model_as_the_views_would(store, seed, slice_days,
                                                                      parts):
    fed, deferred = f"t-fed-{uuid.uuid4().hex[:8]}", f"t-bulk-{uuid.uuid4().hex[:8]}"
    ledger_append(_ledger_rows(fed, seed))
    rows = _ledger_rows(deferred, seed)
    with ledger_views_deferred(store, [deferred], slice_days=slice_days):
        for part in range(parts):
            ledger_append(rows[part::parts])
    targets = sorted({view.target.split(".")[-1] for view in _ledger_views(store)})
    assert len(targets) >= 15
    for table in targets:
        store.command(f"OPTIMIZE TABLE {table} FINAL")
    empty = []
    for table in targets:
        expected = _contents(store, table, fed)
        assert _contents(store, table, deferred) == expected, table
        if not expected:
            empty.append(table)
    assert not empty, f"the data left these read models empty: {empty}"


@pytest.mark.django_db
def test_a_deferred_load_refuses_a_tenant_the_views_already_fed(store):
    tenant_id = f"t-{uuid.uuid4().hex[:8]}"
    ledger_append(_ledger_rows(tenant_id, 1)[:3])
    with pytest.raises(ValueError, match="already hold ledger rows"):
        with ledger_views_deferred(store, [tenant_id]):
            pass
    # and the views are still attached: a new tenant's rows reach them
    other = f"t-{uuid.uuid4().hex[:8]}"
    ledger_append(_ledger_rows(other, 2))
    assert store.query("SELECT count() AS n FROM ledger_daily WHERE tenant_id = %(t)s",
                       {"t": other})[0]["n"] > 0
