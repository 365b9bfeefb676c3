"""Attribution: each finalized invoice line's amount, allocated in ClickHouse to the events
that earned it, written as REVENUE entries; voided or changed lines are reversed.

The whole allocation is SQL (INSERT ... SELECT); Python only ships the lines in and records the
run. A run reconciles: per (invoice, line, event) it compares the amount the line should give
the event now with the net amount REVENUE entries already gave it, and writes only the
difference, as a REVERSAL of the old amount and an ORIGINAL of the new one. A second run over
unchanged data therefore writes nothing.

:TRICKY: this module writes its SQL (and its tenant filters) by hand, one of the exemptions
`aforo.ledger.query` names: the allocation is joins, arrays and an INSERT ... SELECT over them,
which the ledger query builder would only obscure.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import Q

from aforo import eventstore
from aforo.errors import Conflict
from aforo.ledger import EVENT_DIMENSIONS
from aforo.models import Tenant
from aforo.money import NANO
from billing.estimates import revenue_rates_refresh
from billing.models import (
    AttributionRun,
    AttributionRunStatus,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
)
from billing.settlement import settlements_reconcile_batch

INVOICES_PER_BATCH = 1000
_LOCK = "aforo:attribution-lock:{tenant_id}"

# The weight of an event in a line of each unit (API.md: FLAT and EVENTS equally per event),
# read from the event's ORIGINAL COST entry (corrections never change usage). COGS (generated
# markup lines) weighs by that entry's cost in nanodollars, before any repricing correction.
WEIGHT_SQL = """multiIf(
    line_unit = 'INPUT_TOKENS', input_tokens,
    line_unit = 'OUTPUT_TOKENS', output_tokens,
    line_unit = 'TOKENS', input_tokens + output_tokens,
    line_unit = 'TOOL_CALLS', tool_calls,
    line_unit = 'REASONING_STEPS', reasoning_steps,
    line_unit = 'COGS', greatest(toInt64(0), toInt64(toDecimal128(cogs_usd, 9) * 1000000000)),
    toInt64(1))"""

DIMENSIONS = ("occurred_at", *EVENT_DIMENSIONS)

_EVENTS = """
    SELECT event_id, {dimensions}, input_tokens, output_tokens, tool_calls, reasoning_steps,
           ai_cogs_usd + infra_cogs_usd + fee_cogs_usd + unclassified_cogs_usd AS cogs_usd
    FROM ledger
    WHERE tenant_id = %(tenant_id)s AND entry_type = 'COST' AND entry_kind = 'ORIGINAL'
      AND occurred_at >= %(start)s AND occurred_at < %(end)s
      AND customer_id IN (SELECT customer_id FROM attribution_lines
                          WHERE tenant_id = %(tenant_id)s AND run_id = %(batch)s)
""".replace("{dimensions}", ", ".join(DIMENSIONS))

_LINES = """
    SELECT line_no, invoice_id, line_id, customer_id, product_id AS {product_alias},
           period_start, period_end, unit AS line_unit, amount_nanos
    FROM attribution_lines
    WHERE tenant_id = %(tenant_id)s AND run_id = %(batch)s AND all_products = {all_products}
"""

# Events joined to the lines they fall under: same customer, same product (or a line for every
# product), occurredAt in [periodStart, periodEnd).
# :TRICKY: ClickHouse JOINs are equality-only hash joins with the right side in memory, so the
# small side (lines) goes right and the period range is a filter after the join.
_MATCH = """
    SELECT line_no, invoice_id, line_id, amount_nanos, event_id, {dimensions},
           {weight} AS weight
    FROM ({events}) AS matched_events ALL INNER JOIN ({lines}) AS matched_lines USING ({using})
    WHERE occurred_at >= period_start AND occurred_at < period_end
"""


def _matched_sql(*, wildcard: bool) -> str:
    """Every (line, event) pair with its weight; UNION ALL of per-product and all-product lines."""
    parts = [_MATCH.format(
        dimensions=", ".join(DIMENSIONS), weight=WEIGHT_SQL, events=_EVENTS,
        lines=_LINES.format(product_alias="product_id", all_products=0),
        using="customer_id, product_id")]
    if wildcard:
        parts.append(_MATCH.format(
            dimensions=", ".join(DIMENSIONS), weight=WEIGHT_SQL, events=_EVENTS,
            lines=_LINES.format(product_alias="line_product_id", all_products=1),
            using="customer_id"))
    return "\nUNION ALL\n".join(parts)


# Largest remainder per line, in integer nanodollars: base_i = floor(|A|·w_i / W), the
# leftover |A| − Σ base_i (< number of events) goes one nano each to the events with the
# largest remainders |A|·w_i − base_i·W, ties broken by event id, so the parts sum exactly to
# the line (the leftover events are those whose (remainder, hash, id) reaches the leftover-th
# largest). All weights zero (a TOOL_CALLS line whose events made no tool calls): equal shares.
# :TRICKY: |A|·w_i overflows Int64 (a $1M line is 1e15 nanos, times 1e7 tokens); Decimal(38, 0)
# multiplies and divides exactly on 18.16 and on current ClickHouse (Int128 is not on 18.16).
# :TRICKY: 18.16 cannot arraySum Decimal(38, 0); each base fits Int64 (it is at most |A|).
# :TRICKY: on 18.16 a lambda cannot capture a column from outside it; per-line values enter
# lambdas as extra arrays built with replicate(value, array).
# :TRICKY: ARRAY JOIN copies every other column into each row; only same-length arrays are
# joined together here, never a whole array next to its elements (that would be N² memory).
_ALLOCATION = """
SELECT line_no, invoice_id, line_id, event_id, alloc_nanos, {dim_out}
FROM (
    SELECT line_no, invoice_id, line_id, ids, dims,
        if(total_weight = 0, arrayMap(x -> toInt64(1), ws), ws) AS eff_ws,
        if(total_weight = 0, toInt64(length(ws)), total_weight) AS eff_total,
        abs(amount_nanos) AS abs_nanos,
        if(amount_nanos < 0, toInt64(-1), toInt64(1)) AS sgn,
        arrayMap((w, a) -> toDecimal128(a, 0) * w, eff_ws, replicate(abs_nanos, eff_ws))
            AS products,
        arrayMap((p, t) -> toInt64(p / t), products, replicate(eff_total, eff_ws)) AS bases,
        arrayMap((p, b, t) -> toInt64(p - toDecimal128(b, 0) * t),
                 products, bases, replicate(eff_total, eff_ws)) AS rems,
        abs_nanos - arraySum(bases) AS leftover,
        arrayMap((r, id) -> tuple(r, cityHash64(id), id), rems, ids) AS rank_keys,
        arrayReverseSort(rank_keys)[greatest(leftover, 1)] AS threshold,
        arrayMap((b, key, l, th, s) -> (b + if(l > 0 AND key >= th, 1, 0)) * s,
                 bases, rank_keys, replicate(leftover, bases), replicate(threshold, bases),
                 replicate(sgn, bases)) AS allocs
    FROM (
        SELECT line_no, any(invoice_id) AS invoice_id, any(line_id) AS line_id,
               any(amount_nanos) AS amount_nanos, sum(weight) AS total_weight,
               groupArray(event_id) AS ids, groupArray(weight) AS ws,
               groupArray(tuple({dim_in})) AS dims
        FROM ({matched})
        GROUP BY line_no
    )
)
ARRAY JOIN ids AS event_id, allocs AS alloc_nanos, dims AS dim
"""

_EXISTING = """
    SELECT invoice_id, invoice_line_id, event_id, revenue_usd, {dimensions}
    FROM ledger
    WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE'
      AND invoice_id IN (SELECT invoice_id FROM attribution_invoices
                         WHERE tenant_id = %(tenant_id)s AND run_id = %(batch)s)
"""

_LEDGER_COLUMNS = (
    "tenant_id, entry_id, entry_type, entry_kind, event_id, occurred_at, recorded_at, "
    f"{', '.join(EVENT_DIMENSIONS)}, revenue_usd, cost_source, invoice_id, invoice_line_id, "
    "attribution_run_id"
)

# Desired (this run's allocation) against existing (net REVENUE already written), per
# (invoice, line, event); only differences become entries: a REVERSAL of what was there and
# an ORIGINAL of what should be.
# :TRICKY: sum() of Decimal(18, 9) is Decimal(38, 9); both UNION ALL branches and the array of
# (kind, amount) tuples are cast to one type, as 18.16 does not unify them itself.
_RECONCILE = """
INSERT INTO ledger ({columns})
SELECT %(tenant_id)s, concat('rev-', hex(cityHash64(%(run_id)s, kind_amount.1, invoice_id,
                                                  invoice_line_id, event_id))),
       'REVENUE', kind_amount.1, event_id, occurred_at, %(now)s, {event_dimensions},
       kind_amount.2, 'RATE_CARD', invoice_id, invoice_line_id, %(run_id)s
FROM (
    SELECT invoice_id, invoice_line_id, event_id,
           toDecimal64(sum(desired), 9) AS desired_usd,
           toDecimal64(sum(existing), 9) AS existing_usd,
           {any_dimensions}
    FROM (
        SELECT invoice_id, line_id AS invoice_line_id, event_id,
               toDecimal64(alloc_nanos, 0) * toDecimal64('0.000000001', 9) AS desired,
               toDecimal64(0, 9) AS existing, {dim_columns}
        FROM ({allocation})
        UNION ALL
        SELECT invoice_id, invoice_line_id, event_id, toDecimal64(0, 9) AS desired,
               toDecimal64(revenue_usd, 9) AS existing, {dimensions}
        FROM ({existing})
    )
    GROUP BY invoice_id, invoice_line_id, event_id
    HAVING desired_usd != existing_usd
)
ARRAY JOIN arrayFilter(x -> x.2 != toDecimal64(0, 9),
                       [('REVERSAL', toDecimal64(-existing_usd, 9)),
                        ('ORIGINAL', desired_usd)]) AS kind_amount
""".replace("{event_dimensions}", ", ".join(EVENT_DIMENSIONS))

# Fast path, for batches none of whose invoices has REVENUE entries yet: the allocation is
# written as it is, without the reconciliation's GROUP BY.
_FRESH = """
INSERT INTO ledger ({columns})
SELECT %(tenant_id)s, concat('rev-', hex(cityHash64(%(run_id)s, 'ORIGINAL', invoice_id,
                                                  line_id, event_id))),
       'REVENUE', 'ORIGINAL', event_id, occurred_at, %(now)s, {event_dimensions},
       toDecimal64(alloc_nanos, 0) * toDecimal64('0.000000001', 9), 'RATE_CARD', invoice_id,
       line_id, %(run_id)s
FROM ({allocation})
WHERE alloc_nanos != 0
""".replace("{event_dimensions}", ", ".join(EVENT_DIMENSIONS))

# A line's fingerprint: the sum of hash(event id) × nanodollars over its entries. It is
# linear, so a REVERSAL and its ORIGINAL cancel out, and the net entries of a line match its
# desired allocation exactly when the fingerprints (and net sums) are equal.
# :TRICKY: Int64 products and sums wrap around; both sides wrap the same way.
_FINGERPRINT = "sum(toInt64(cityHash64(event_id)) * {nanos})"
_NET_NANOS = "toInt64(toDecimal128(revenue_usd, 9) * 1000000000)"

_DESIRED_BY_LINE = """
SELECT line_no, countIf(alloc_nanos != 0) AS events, sum(alloc_nanos) AS net_nanos,
       {fingerprint} AS fingerprint
FROM ({allocation})
GROUP BY line_no
"""

_EXISTING_BY_LINE = """
SELECT invoice_id, invoice_line_id, sum({nanos}) AS net_nanos,
       {fingerprint} AS fingerprint
FROM ledger
WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE'
  AND invoice_id IN (SELECT invoice_id FROM attribution_invoices
                     WHERE tenant_id = %(tenant_id)s AND run_id = %(batch)s)
GROUP BY invoice_id, invoice_line_id
"""

# Each line's matched events and their total weight in its unit: the per-unit revenue the
# estimate of not-yet-invoiced events is made from (billing.estimates).
_UNITS_BY_LINE = """
SELECT line_no, count() AS events, sum(weight) AS weight FROM ({matched}) GROUP BY line_no
"""

_WRITTEN_BY_LINE = """
SELECT invoice_id, invoice_line_id, count() AS events
FROM ledger
WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE' AND attribution_run_id = %(run_id)s
  AND invoice_id IN (SELECT invoice_id FROM attribution_invoices
                     WHERE tenant_id = %(tenant_id)s AND run_id = %(batch)s)
GROUP BY invoice_id, invoice_line_id
"""


def _allocation_sql(*, wildcard: bool, dimensions: bool = True) -> str:
    matched = _matched_sql(wildcard=wildcard)
    if not dimensions:  # for fingerprints: the dims tuple is the cost, carry one column only
        return _ALLOCATION.format(dim_out="dim.1 AS occurred_at", dim_in="occurred_at",
                                  matched=matched)
    return _ALLOCATION.format(
        dim_out=", ".join(f"dim.{i + 1} AS {name}" for i, name in enumerate(DIMENSIONS)),
        dim_in=", ".join(DIMENSIONS), matched=matched)


def _reconcile_sql(*, wildcard: bool) -> str:
    allocation = _allocation_sql(wildcard=wildcard)
    return _RECONCILE.format(
        columns=_LEDGER_COLUMNS,
        any_dimensions=", ".join(f"any({d}) AS {d}" for d in DIMENSIONS),
        dim_columns=", ".join(DIMENSIONS),
        dimensions=", ".join(DIMENSIONS),
        allocation=allocation,
        existing=_EXISTING.format(dimensions=", ".join(DIMENSIONS)),
    )


@dataclass
class _Line:
    line_no: int
    line: InvoiceLine
    invoice: Invoice
    events: int = 0


@dataclass
class RunTotals:
    lines: int = 0
    lines_matched: int = 0
    events: int = 0
    attributed_usd: Decimal = Decimal(0)
    unattributed_usd: Decimal = Decimal(0)
    unattributed_lines: list[dict[str, Any]] = field(default_factory=list)


def _nanos(amount: Decimal) -> int:
    return int((amount / NANO).to_integral_value())


def _batches(invoices: list[Invoice], size: int) -> Iterable[list[Invoice]]:
    """Invoices grouped so every version of one invoice id lands in the same batch."""
    by_id: dict[str, list[Invoice]] = {}
    for invoice in invoices:
        by_id.setdefault(invoice.invoice_id, []).append(invoice)
    groups = list(by_id.values())
    for start in range(0, len(groups), size):
        yield [inv for group in groups[start:start + size] for inv in group]


def _ship(tenant: Tenant, batch: str, invoices: list[Invoice], lines: list[_Line]) -> None:
    """Copy a batch's invoice ids and lines into the event store under the batch id."""
    eventstore.insert("attribution_invoices", [
        {"tenant_id": tenant.slug, "run_id": batch, "invoice_id": invoice_id}
        for invoice_id in sorted({inv.invoice_id for inv in invoices})
    ])
    if lines:
        eventstore.insert("attribution_lines", [
            {"tenant_id": tenant.slug, "run_id": batch, "line_no": item.line_no,
             "invoice_id": item.invoice.invoice_id, "line_id": item.line.line_id,
             "customer_id": item.invoice.customer_id, "product_id": item.line.product_id,
             "all_products": 0 if item.line.product_id else 1,
             "period_start": item.invoice.period_start, "period_end": item.invoice.period_end,
             "unit": item.line.unit, "amount_nanos": _nanos(item.line.amount_usd)}
            for item in lines
        ])


def _attribute_batch(tenant: Tenant, run: AttributionRun, batch_no: int,
                     invoices: list[Invoice], totals: RunTotals, now: datetime) -> None:
    batch = f"{run.run_id}:{batch_no}"
    lines: list[_Line] = []
    for invoice in invoices:
        if invoice.status != InvoiceStatus.FINALIZED:
            continue
        for line in invoice.lines.all():
            lines.append(_Line(line_no=len(lines) + 1, line=line, invoice=invoice))
    _ship(tenant, batch, invoices, lines)
    wildcard = any(not item.line.product_id for item in lines)
    params = {
        "tenant_id": tenant.slug, "batch": batch, "run_id": str(run.run_id), "now": now,
        "start": min((i.invoice.period_start for i in lines), default=now),
        "end": max((i.invoice.period_end for i in lines), default=now),
    }
    fingerprint = _FINGERPRINT.format(nanos=_NET_NANOS)
    existing = {
        (row["invoice_id"], row["invoice_line_id"]): (row["net_nanos"], row["fingerprint"])
        for row in eventstore.tenant_query(
            tenant.slug, _EXISTING_BY_LINE.format(nanos=_NET_NANOS, fingerprint=fingerprint),
            params)
    }
    if not existing:
        # Nothing attributed yet for these invoices: write the allocation as it is.
        if lines:
            eventstore.command(_FRESH.format(
                columns=_LEDGER_COLUMNS, allocation=_allocation_sql(wildcard=wildcard)), params)
        counts = {(row["invoice_id"], row["invoice_line_id"]): row["events"]
                  for row in eventstore.tenant_query(tenant.slug, _WRITTEN_BY_LINE, params)}
        for item in lines:
            item.events = counts.get((item.invoice.invoice_id, item.line.line_id), 0)
    else:
        desired = {}
        if lines:
            desired = {row["line_no"]: row for row in eventstore.tenant_query(
                tenant.slug, _DESIRED_BY_LINE.format(
                    allocation=_allocation_sql(wildcard=wildcard, dimensions=False),
                    fingerprint=_FINGERPRINT.format(nanos="alloc_nanos")), params)}
        wanted: dict[tuple[str, str], tuple[int, int]] = {}
        for item in lines:
            row = desired.get(item.line_no)
            item.events = row["events"] if row else 0
            wanted[(item.invoice.invoice_id, item.line.line_id)] = (
                (row["net_nanos"], row["fingerprint"]) if row else (0, 0))
        dirty = {key[0] for key in wanted.keys() | existing.keys()
                 if wanted.get(key, (0, 0)) != existing.get(key, (0, 0))}
        if dirty:
            # Reconcile only the invoices whose attribution changed, as a sub-batch.
            sub = f"{batch}:changed"
            sub_lines = [i for i in lines if i.invoice.invoice_id in dirty]
            _ship(tenant, sub, [inv for inv in invoices if inv.invoice_id in dirty], sub_lines)
            eventstore.command(
                _reconcile_sql(wildcard=any(not i.line.product_id for i in sub_lines)),
                {**params, "batch": sub})
    settlements_reconcile_batch(tenant_slug=tenant.slug, batch=batch, run_id=str(run.run_id),
                                now=now)
    _record_units(tenant, lines, wildcard, params)
    for item in lines:
        totals.lines += 1
        if item.events or not item.line.amount_usd:
            totals.lines_matched += 1
            totals.events += item.events
            totals.attributed_usd += item.line.amount_usd
        else:
            totals.unattributed_usd += item.line.amount_usd
            totals.unattributed_lines.append({
                "invoiceId": item.invoice.invoice_id, "lineId": item.line.line_id,
                "productId": item.line.product_id or None,
                "amountUsd": str(item.line.amount_usd)})


def _record_units(tenant: Tenant, lines: list[_Line], wildcard: bool, params: dict) -> None:
    """Store each line's matched events and weight (the estimate's per-unit basis)."""
    if not lines:
        return
    found = {row["line_no"]: row for row in eventstore.tenant_query(
        tenant.slug, _UNITS_BY_LINE.format(matched=_matched_sql(wildcard=wildcard)), params)}
    for item in lines:
        row = found.get(item.line_no)
        item.line.attributed_events = int(row["events"]) if row else 0
        item.line.attributed_weight = int(row["weight"]) if row else 0
    InvoiceLine.objects.bulk_update([item.line for item in lines],
                                    ["attributed_events", "attributed_weight"], batch_size=1000)


def attribution_run(*, tenant: Tenant, trigger: str = "MANUAL",
                    invoice_ids: list[str] | None = None,
                    changed_since: datetime | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    batch_size: int = INVOICES_PER_BATCH) -> AttributionRun:
    """Attribute every finalized invoice of the tenant (or those named) and reverse voided ones.

    `changed_since` narrows the run to invoices whose period ended, or that were imported or
    voided, after that moment (the nightly run's window; late events rarely arrive later).
    Returns the run record. One run per tenant at a time: a concurrent one gets a 409.
    """
    lock = _LOCK.format(tenant_id=tenant.pk)
    if not cache.add(lock, "1", timeout=3600):
        raise Conflict("An attribution run for this tenant is already in progress.")
    run = AttributionRun.objects.create(tenant=tenant, trigger=trigger)
    started = time.monotonic()
    totals = RunTotals()
    try:
        invoices = Invoice.objects.filter(
            tenant=tenant, status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.VOID],
        ).prefetch_related("lines").order_by("invoice_id", "version")
        if invoice_ids is not None:
            invoices = invoices.filter(invoice_id__in=invoice_ids)
        if changed_since is not None:
            # every version of an invoice in the window, so old ones are reconciled with it
            recent = (Invoice.objects.filter(tenant=tenant)
                      .filter(Q(period_end__gte=changed_since) | Q(created_at__gte=changed_since)
                              | Q(voided_at__gte=changed_since))
                      .values("invoice_id"))
            invoices = invoices.filter(invoice_id__in=recent)
        invoices = list(invoices)
        run.invoices = len({inv.invoice_id for inv in invoices if
                            inv.status == InvoiceStatus.FINALIZED})
        now = datetime.now(timezone.utc).replace(microsecond=0)
        batches = list(_batches(invoices, batch_size))
        for number, batch in enumerate(batches, start=1):
            _attribute_batch(tenant, run, number, batch, totals, now)
            if progress:
                progress(number, len(batches))
        written = eventstore.tenant_query(
            tenant.slug,
            "SELECT count() AS entries, sumIf(revenue_usd, entry_kind = 'REVERSAL') AS reversed "
            "FROM ledger WHERE tenant_id = %(tenant_id)s AND entry_type = 'REVENUE' "
            "AND attribution_run_id = %(run_id)s",
            {"run_id": str(run.run_id)},
        )[0]
        run.entries_written = written["entries"]
        run.reversed_usd = -Decimal(written["reversed"] or 0)
        revenue_rates_refresh(tenant=tenant)
        run.status = AttributionRunStatus.SUCCEEDED
    except Exception as exc:
        run.status = AttributionRunStatus.FAILED
        run.errors = [*run.errors, f"{type(exc).__name__}: {exc}"[:2000]]
        raise
    finally:
        run.lines = totals.lines
        run.lines_matched = totals.lines_matched
        run.lines_unattributed = totals.lines - totals.lines_matched
        run.events = totals.events
        run.attributed_usd = totals.attributed_usd
        run.unattributed_usd = totals.unattributed_usd
        run.unattributed_lines = totals.unattributed_lines[:1000]
        run.duration_ms = int((time.monotonic() - started) * 1000)
        run.finished_at = datetime.now(timezone.utc)
        run.save()
        cache.delete(lock)
    return run

