"""Settlement: when attribution settles an event, its attributed revenue replaces the expected
one. A SETTLE entry cancels what the event still counts as settling (its provisional revenue,
and its usage and cost as the estimate's basis); a SETTLE REVERSAL restores them when the
event's revenue is reversed (docs/eventstore.md, "Expected revenue and SETTLE entries").

Like attribution, this reconciles rather than appends blindly: per event it compares what the
event should count as settling now (nothing once settled, its COST entries' sums otherwise) with
what its COST and SETTLE entries net to, and writes only the difference. Running it twice
writes nothing the second time, and a run that died half way is healed by the next.

:TRICKY: the reconciliation is one INSERT ... SELECT over an event-level GROUP BY, written by
hand with its own tenant filter (an exemption `aforo.ledger.query` names).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from aforo import eventstore
from aforo.ledger import EVENT_DIMENSIONS

# Carried onto SETTLE entries so the rollups bucket them with their event.
_DIMENSIONS = ("occurred_at", *EVENT_DIMENSIONS)
# What a settled event stops counting as settling.
_MEASURES = ("event_count", "input_tokens", "output_tokens", "reasoning_steps", "tool_calls",
             "ai_cogs_usd", "infra_cogs_usd", "fee_cogs_usd", "unclassified_cogs_usd",
             "rated_revenue_usd", "carried_revenue_usd")
_ORIGINAL = "entry_type = 'COST' AND entry_kind = 'ORIGINAL'"
# The settled rule, as billing.queries.REVENUE_STATUS_SQL: an un-reversed ORIGINAL REVENUE entry.
_SETTLED = ("countIf(entry_type = 'REVENUE' AND entry_kind = 'ORIGINAL') > "
            "countIf(entry_type = 'REVENUE' AND entry_kind = 'REVERSAL')")

# :TRICKY: aliases are prefixed (e_, c_, s_, d_): an alias equal to a column name would be
# substituted into the WHERE clause and the other aggregates of the same SELECT.
_RECONCILE = f"""
INSERT INTO ledger (tenant_id, entry_id, entry_type, entry_kind, event_id, recorded_at,
                    {", ".join(_DIMENSIONS)}, {", ".join(_MEASURES)}, revenue_source,
                    cost_source, attribution_run_id)
SELECT %(tenant_id)s, concat('settle-', hex(cityHash64(%(run_id)s, event_id))), 'SETTLE',
       multiIf(d_event_count < 0, 'ORIGINAL', d_event_count > 0, 'REVERSAL', 'CORRECTION'),
       event_id, %(now)s, {", ".join(f"e_{d}" for d in _DIMENSIONS)},
       {", ".join(f"d_{m}" for m in _MEASURES)}, e_source, e_cost_source, %(run_id)s
FROM (
    SELECT event_id, {", ".join(f"e_{d}" for d in _DIMENSIONS)}, e_source, e_cost_source,
           {", ".join(f"if(settled, -(c_{m} + s_{m}), -s_{m}) AS d_{m}" for m in _MEASURES)}
    FROM (
        SELECT event_id,
               {", ".join(f"anyIf({d}, {_ORIGINAL}) AS e_{d}" for d in _DIMENSIONS)},
               anyIf(revenue_source, {_ORIGINAL}) AS e_source,
               anyIf(cost_source, {_ORIGINAL}) AS e_cost_source,
               {_SETTLED} AS settled,
               {", ".join(f"sumIf({m}, entry_type = 'COST') AS c_{m}" for m in _MEASURES)},
               {", ".join(f"sumIf({m}, entry_type = 'SETTLE') AS s_{m}" for m in _MEASURES)}
        FROM ledger
        WHERE tenant_id = %(tenant_id)s AND occurred_at >= %(start)s AND occurred_at < %(end)s
          AND event_id IN ({{events}})
        GROUP BY event_id
        HAVING countIf({_ORIGINAL}) = 1
    )
)
WHERE {" OR ".join(f"d_{m} != 0" for m in _MEASURES)}
"""

# Events whose settlement an attribution batch may have changed: those with REVENUE entries of
# the batch's invoices (new ones, reversed ones, and unchanged ones, so a lost write heals).
_BATCH_EVENTS = """
    SELECT event_id FROM ledger
    WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE'
      AND invoice_id IN (SELECT invoice_id FROM attribution_invoices
                         WHERE tenant_id = %(tenant_id)s AND run_id = %(batch)s)
"""
_BATCH_SPAN = f"""
    SELECT min(occurred_at) AS first, max(occurred_at) AS last, count() AS entries
    FROM ledger WHERE tenant_id = %(tenant_id)s AND event_id IN ({_BATCH_EVENTS})
      AND entry_type = 'REVENUE'
"""


def settlements_reconcile_batch(*, tenant_slug: str, batch: str, run_id: str,
                                now: datetime) -> None:
    """Settle (or unsettle) the events an attribution batch's invoices give revenue to."""
    params = {"batch": batch, "run_id": run_id, "now": now}
    span = eventstore.tenant_query(tenant_slug, _BATCH_SPAN, params)[0]
    if not span["entries"]:
        return
    eventstore.command(_RECONCILE.format(events=_BATCH_EVENTS), {
        **params, "tenant_id": tenant_slug, "start": span["first"],
        "end": span["last"] + timedelta(seconds=1)})


def settlements_reconcile_events(*, tenant_slug: str, events: list[tuple[str, datetime]],
                                 run_id: str, now: datetime | None = None) -> None:
    """The same for named events (id, occurred at): after a repricing changed their cost."""
    if not events:
        return
    now = now or datetime.now(timezone.utc).replace(microsecond=0)
    times = [at for _id, at in events]
    eventstore.command(
        _RECONCILE.format(events="SELECT arrayJoin(%(ids)s)"),
        {"tenant_id": tenant_slug, "ids": sorted({event_id for event_id, _at in events}),
         "run_id": run_id, "now": now, "start": min(times),
         "end": max(times) + timedelta(seconds=1)})


# The events an allocation gave a share to (cost_sources.allocations): its entries carry its id.
_ALLOCATION_EVENTS = """
    SELECT event_id FROM ledger
    WHERE tenant_id = %(tenant_id)s AND allocation_id = %(allocation_id)s
      AND occurred_at >= %(start)s AND occurred_at < %(end)s
"""


def settlements_reconcile_allocation(*, tenant_slug: str, allocation_id: str, start: datetime,
                                     end: datetime, run_id: str,
                                     now: datetime | None = None) -> None:
    """The same for the events of an allocation (or its reversal) in [start, end): a settled
    event's allocated cost stops counting as settling, as the rest of its cost does."""
    now = now or datetime.now(timezone.utc).replace(microsecond=0)
    eventstore.command(_RECONCILE.format(events=_ALLOCATION_EVENTS), {
        "tenant_id": tenant_slug, "allocation_id": allocation_id, "run_id": run_id,
        "now": now, "start": start, "end": end})
