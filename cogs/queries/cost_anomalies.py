"""Anomalies: events costing at least the tenant's multiple of their product+model average in
the period (groups of 20 events or more), highest ratio first."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from aforo.ledger.query import COGS_SUM, COST, METERED, LedgerQuery, Table
from aforo.models import Tenant
from aforo.periods import Period
from cogs.margins import HUNDRED
from cogs.queries.breakdowns import Dimension, Totals, rollup_for
from cogs.queries.transactions import Transaction, transactions_of

# The engine's Float64 pre-filter uses lines this much lower (see anomalies()).
LINE_SLACK = Decimal("0.999999")
PICO = Decimal("0.000000000001")
MIN_ANOMALY_GROUP_EVENTS = 20
ANOMALY_CHUNK = 2000


@dataclass(frozen=True)
class Anomaly:
    transaction: Transaction
    group_cogs_usd: Decimal
    group_event_count: int
    # What the event metered (its cost less allocations spread onto it), which it is judged
    # on; None: the transaction's cost.
    metered_cogs_usd: Decimal | None = None

    @property
    def average_cogs_usd(self) -> Decimal:
        return self.group_cogs_usd / self.group_event_count

    @property
    def ratio(self) -> Decimal | None:
        if self.group_cogs_usd == 0:
            return None
        cost = (self.transaction.cogs_usd if self.metered_cogs_usd is None
                else self.metered_cogs_usd)
        return cost * self.group_event_count / self.group_cogs_usd


def anomalies(tenant: Tenant, period: Period, *, multiplier: Decimal, offset: int = 0,
              limit: int = 50, use_rollups: bool = True) -> tuple[list[Anomaly], int]:
    """Events costing ≥ multiplier × their product+model average (groups of ≥ 20 events),
    highest ratio first; and how many there are."""
    groups = _anomaly_groups(tenant, period, use_rollups=use_rollups)
    if not groups:
        return [], 0
    multiplier_pct = int((multiplier * HUNDRED).to_integral_value())
    by_key = {row.key: row for row in groups}
    costs = LedgerQuery(tenant.slug, Table.EVENT_COSTS).period(period)

    def anomalous(cogs: Decimal, group: Totals | None) -> bool:
        # cost ≥ m × group cost / group events  ⇔  cost × events × 100 ≥ group cost × m×100,
        # in Decimal and integers: exact.
        return group is not None and (
            cogs * group.event_count * 100 >= _metered(group) * multiplier_pct)

    # Step 1 reads ledger_event_costs (one row per COST entry: its group's hash and its cost,
    # sorted by group and cost) and keeps the entries at or over their group's line, looked up
    # per row by transform(). The engine compares in Float64 against a line set a little
    # lower, so it returns a superset; every candidate is then checked exactly, in Decimal,
    # so a float can never add an anomaly. Only narrow columns are read: the candidates sit
    # at the high-cost end of their groups, a few granules, and the group comes from its hash
    # (the rows shown are checked against their own product and model below). A key condition
    # per group (80 ORs) cost more to analyse than this scan.
    by_hash = {group.attributes["hash"]: group for group in groups}
    entries: list[tuple] = []
    for start in range(0, len(groups), ANOMALY_CHUNK):  # keeps the SQL text under 256 KiB
        chunk = groups[start:start + ANOMALY_CHUNK]
        lines = [(multiplier * _metered(group) / group.event_count * LINE_SLACK).quantize(
            PICO, rounding=ROUND_FLOOR) for group in chunk]
        entries += costs.expressions(
            "event_id", "occurred_at", "entry_kind", "group_hash", "cogs",
        ).where_sql(
            "toFloat64(cogs) >= transform(group_hash, CAST(%(hashes)s AS Array(UInt64)), "
            "CAST(%(lines)s AS Array(Float64)), toFloat64(1e300))",
            hashes=[group.attributes["hash"] for group in chunk], lines=lines,
        ).rows()[1]
    # An event with corrections costs the sum of its entries: those are settled in step 2.
    corrections = (costs.expressions("DISTINCT event_id", "occurred_at")
                   .where_sql("entry_kind != 'ORIGINAL'").fetch())
    corrected = {row["event_id"] for row in corrections}
    # An event with no correction costs exactly its original entry: decided here.
    found = [
        (event_id, at, cogs, group)
        for event_id, at, _kind, group_hash, cogs in entries
        if event_id not in corrected and anomalous(cogs, group := by_hash.get(group_hash))
    ]
    # Step 2, only for corrected events: sum all their entries. In chunks, so the SQL text
    # stays well under the servers' max_query_size (256 KiB).
    ordered = sorted({(row["occurred_at"], row["event_id"]) for row in corrections})
    for start in range(0, len(ordered), ANOMALY_CHUNK):
        chunk = ordered[start:start + ANOMALY_CHUNK]
        for row in (LedgerQuery(tenant.slug).period(period).where_sql(COST).where_sql(METERED)
                    .dimensions("event_id", "product_id", "provider", "model")
                    .expressions(f"sum({COGS_SUM}) AS cogs", "min(occurred_at) AS at")
                    .where_in("occurred_at", {at for at, _id in chunk})
                    .where_in("event_id", {event_id for _at, event_id in chunk})
                    .group_by("event_id", "product_id", "provider", "model").fetch()):
            group = by_key.get((row["product_id"], row["provider"], row["model"]))
            if anomalous(row["cogs"], group):
                found.append((row["event_id"], row["at"], row["cogs"], group))
    ranked = sorted(
        found, key=lambda item: (-(item[2] * item[3].event_count / _metered(item[3])),
                                 -item[1].timestamp(), item[0]))
    page = ranked[offset:offset + limit]
    transactions = transactions_of(tenant, [(event_id, at) for event_id, at, _c, _g in page])
    out = [Anomaly(transaction=transaction, group_cogs_usd=_metered(group),
                   group_event_count=group.event_count, metered_cogs_usd=cogs)
           for (_id, _at, cogs, group), transaction in zip(page, transactions, strict=True)
           # An entry of another group under the same 64-bit hash (odds ~2^-64) is not shown
           # (it would still be counted).
           if (transaction.product_id, transaction.provider, transaction.model) == group.key]
    return out, len(ranked)


def _anomaly_groups(tenant: Tenant, period: Period, *, use_rollups: bool) -> list[Totals]:
    """Product+provider+model groups big enough (≥ 20 events) and with a cost to compare to."""
    keys = ("product_id", "provider", "model")
    rows = (LedgerQuery(tenant.slug, rollup_for(Dimension.MODEL, period, use_rollups))
            .period(period).dimensions(*keys)
            .expressions("cityHash64(product_id, provider, model) AS group_hash")
            .measures("events", "cogs_ai", "cogs_infra", "cogs_fee", "cogs_unclassified",
                      "revenue", "cogs_allocated")
            .group_by(*keys).fetch())
    groups = []
    for row in rows:
        totals = Totals(
            key=(row["product_id"], row["provider"], row["model"]),
            attributes={"hash": int(row["group_hash"]), "allocated": row["cogs_allocated"]},
            event_count=int(row["events"]), ai_cogs_usd=row["cogs_ai"],
            infra_cogs_usd=row["cogs_infra"], fee_cogs_usd=row["cogs_fee"],
            unclassified_cogs_usd=row["cogs_unclassified"], revenue_usd=row["revenue"],
        )
        if totals.event_count >= MIN_ANOMALY_GROUP_EVENTS and _metered(totals) > 0:
            groups.append(totals)
    return groups


def _metered(group: Totals) -> Decimal:
    """A group's cost as its events metered it: allocations spread onto them are a book entry,
    and an event is judged (ledger_event_costs skips them too) on what it metered."""
    return group.cogs_usd - group.attributes["allocated"]
