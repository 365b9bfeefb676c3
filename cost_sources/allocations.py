"""Allocations: spread cost that events do not carry (an AWS account's infrastructure, a
provider's gap) onto a period's events, exactly, and take it back (docs/cost-sources.md,
"Allocation").

An allocation's shares are COST CORRECTION entries of the events (`allocation_id` set, the
chosen bucket holding the share); its reversal appends COST REVERSAL entries netting each
event's share to zero. The shares are a largest-remainder split of the amount at the ledger's
quantum (10^-9 USD) by the events' weight, so they sum to exactly the amount. Entries count in
every cost figure (the dashboard, per event, per product, the reconciliation's metered cost);
repricing, the detectors' hourly rollup and the anomalies' candidates skip them. A settled
event's SETTLE entries are brought in line by settlement's own reconciliation.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from django.db import transaction

from aforo import eventstore
from aforo.errors import Conflict, DomainError, NotFound
from aforo.ledger import EVENT_DIMENSIONS
from aforo.ledger.query import COGS_SUM, COST, METERED, ORIGINAL_COST, LedgerQuery
from aforo.models import Tenant
from aforo.money import LEDGER_MAX, LEDGER_PLACES, NANO
from aforo.periods import Period
from cost_sources import queries
from cost_sources.models import Allocation, CostSource

log = logging.getLogger(__name__)

BUCKET_COLUMNS = {
    Allocation.Bucket.AI: "ai_cogs_usd",
    Allocation.Bucket.INFRA: "infra_cogs_usd",
    Allocation.Bucket.FEE: "fee_cogs_usd",
    Allocation.Bucket.UNCLASSIFIED: "unclassified_cogs_usd",
}
# An event's weight, summed over its entries (corrections carry no tokens; COGS is what the
# event metered: earlier allocations do not weigh).
WEIGHTS = {
    Allocation.By.EVENTS: f"toInt64(sumIf(event_count, {ORIGINAL_COST}))",
    Allocation.By.TOKENS: f"toInt64(sumIf(input_tokens + output_tokens, {COST}))",
    Allocation.By.COGS: f"sumIf({COGS_SUM}, {COST} AND {METERED})",
}
MAX_DAYS = 366
# An allocation still APPLYING after this long died with its process: it may be reversed
# (the reversal cancels whatever it wrote).
ABANDONED_AFTER = timedelta(hours=1)
INSERT_CHUNK = 100_000
# Carried onto each share so it groups with its event in every read model.
_CARRIED = ("occurred_at", *EVENT_DIMENSIONS, "revenue_source", "cost_source")


def largest_remainder(amount_nanos: int, weights: Sequence[int]) -> list[int]:
    """Integer shares of `amount_nanos` proportional to `weights` (positive integers) that sum
    to exactly `amount_nanos`: each gets the floor of its exact share, and the units left over
    (fewer than there are weights) go one each to the largest remainders, ties to the earlier
    weight."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("weights must sum to a positive number")
    shares, remainders = [], []
    for weight in weights:
        share, remainder = divmod(amount_nanos * weight, total)
        shares.append(share)
        remainders.append(remainder)
    left = amount_nanos - sum(shares)
    if left:
        for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:left]:
            shares[index] += 1
    return shares


def allocation_get(*, tenant: Tenant, allocation_id: int) -> Allocation:
    found = Allocation.objects.filter(tenant=tenant, pk=allocation_id).first()
    if found is None:
        raise NotFound(f"No allocation {allocation_id} in this tenant.", field="id")
    return found


def _check(*, first: date, last: date, by: str, bucket: str, amount: Decimal | None,
           product_ids: Sequence[str]) -> None:
    if by not in Allocation.By.values:
        raise DomainError(f"by must be one of {', '.join(Allocation.By.values)}.", field="by")
    if bucket not in Allocation.Bucket.values:
        raise DomainError(f"bucket must be one of {', '.join(Allocation.Bucket.values)}.",
                          field="bucket")
    if last < first:
        raise DomainError("to is before from.", field="to")
    if (last - first).days >= MAX_DAYS:
        raise DomainError(f"An allocation spans at most {MAX_DAYS} days.", field="to")
    if amount is not None:
        if not amount.is_finite() or amount <= 0:
            raise DomainError("amount_usd must be more than zero.", field="amount_usd")
        if amount != amount.quantize(NANO) or amount > LEDGER_MAX:
            raise DomainError("amount_usd has at most nine decimals and is under $1e9.",
                              field="amount_usd")
    if any(not isinstance(p, str) or not p.strip() for p in product_ids):
        raise DomainError("product_ids are product ids (non-empty strings).",
                          field="product_ids")


def _targets(tenant_slug: str, period: Period, by: str, product_ids: Sequence[str],
             ) -> tuple[list[str], list[tuple]]:
    """Each event of the period (of the products) with its weight, by event id."""
    query = (LedgerQuery(tenant_slug).period(period).where_sql(COST).dimensions("event_id")
             .expressions(*(f"anyIf({c}, {ORIGINAL_COST}) AS e_{c}" for c in _CARRIED),
                          f"{WEIGHTS[by]} AS e_weight")
             .group_by("event_id")
             .having(f"countIf({ORIGINAL_COST}) = 1 AND e_weight > 0"))
    if product_ids:
        query = query.where_in("product_id", sorted(set(product_ids)))
    return query.rows()


def _append(tenant_slug: str, allocation: Allocation, kind: str, rows: list[tuple],
            now: datetime) -> None:
    """COST entries of `kind`: rows are (event_id, share in nanos, *_CARRIED)."""
    column = BUCKET_COLUMNS[allocation.bucket]
    columns = ("tenant_id", "entry_id", "entry_type", "entry_kind", "event_id", "recorded_at",
               *_CARRIED, column, "allocation_id")
    tag = "alloc" if kind == "CORRECTION" else "unalloc"
    key = str(allocation.pk)
    for start in range(0, len(rows), INSERT_CHUNK):
        eventstore.insert_rows("ledger", columns, [
            (tenant_slug, f"{event_id}#{tag}#{key}", "COST", kind, event_id, now, *carried,
             Decimal(share).scaleb(-LEDGER_PLACES), key)
            for event_id, share, *carried in rows[start:start + INSERT_CHUNK]])


def _settle(tenant_slug: str, allocation: Allocation, period: Period, now: datetime) -> None:
    # Imported here: billing sits below cost sources, and this is its one use.
    from billing.settlement import settlements_reconcile_allocation

    settlements_reconcile_allocation(
        tenant_slug=tenant_slug, allocation_id=str(allocation.pk), start=period.start_at,
        end=period.end_at, run_id=f"allocation-{allocation.pk}-{allocation.status}", now=now)


def allocation_period(allocation: Allocation) -> Period:
    return Period(first=allocation.first_day, last=allocation.last_day, time_zone="UTC")


def allocation_create(*, tenant: Tenant, source: CostSource, first: date, last: date,
                      by: str, bucket: str, amount: Decimal | None = None,
                      product_ids: Sequence[str] = (), description: str = "",
                      now: datetime | None = None) -> Allocation:
    """Spread `amount` (by default, what the source billed over the period) onto the events
    of [first, last] (UTC days; of `product_ids` when given) by `by`, into `bucket`."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    _check(first=first, last=last, by=by, bucket=bucket, amount=amount,
           product_ids=product_ids)
    if source.tenant_id != tenant.pk:
        raise NotFound(f"No cost source {source.pk} in this tenant.", field="source_id")
    period = Period(first=first, last=last, time_zone="UTC")
    if amount is None:
        billed = queries.billed_total(tenant.slug, source_id=str(source.pk), period=period)
        amount = billed.quantize(NANO)
        if amount <= 0:
            raise DomainError(f"{source.name} billed nothing from {first} to {last}: give "
                              "amount_usd.", field="amount_usd")
        if amount > LEDGER_MAX:
            raise DomainError("The billed amount is over $1e9: give amount_usd.",
                              field="amount_usd")
    _columns, targets = _targets(tenant.slug, period, by, product_ids)
    if not targets:
        scope = f" of {', '.join(sorted(set(product_ids)))}" if product_ids else ""
        raise DomainError(f"No events{scope} from {first} to {last} to allocate onto (by "
                          f"{by.lower()}, each needs a weight above zero).",
                          field="product_ids" if product_ids else "from")
    targets.sort(key=lambda row: row[0])  # ties of the split go to the smaller event id
    if by == Allocation.By.COGS:
        weights = [int(row[-1].scaleb(LEDGER_PLACES)) for row in targets]
    else:
        weights = [int(row[-1]) for row in targets]
    shares = largest_remainder(int(amount.scaleb(LEDGER_PLACES)), weights)
    allocation = Allocation.objects.create(
        tenant=tenant, source=source, description=description.strip()[:300], first_day=first,
        last_day=last, amount_usd=amount, by=by, bucket=bucket,
        product_ids=sorted(set(product_ids)), created_at=now,
        events=sum(1 for share in shares if share))
    rows = [(row[0], share, *row[1:-1]) for row, share in zip(targets, shares, strict=True)
            if share]
    try:
        _append(tenant.slug, allocation, "CORRECTION", rows, now)
        _settle(tenant.slug, allocation, period, now)
    except Exception as exc:
        log.exception("allocation %s failed", allocation.pk)
        allocation.status = Allocation.Status.FAILED
        allocation.error = ("Writing the entries failed; reverse this allocation to cancel "
                            f"what was written ({type(exc).__name__}).")
        allocation.save(update_fields=["status", "error"])
        raise
    allocation.status = Allocation.Status.APPLIED
    allocation.save(update_fields=["status"])
    return allocation


def allocation_entries(allocation: Allocation) -> tuple[list[str], list[tuple]]:
    """Per event, the allocation's net share (in its bucket) with the event's dimensions."""
    column = BUCKET_COLUMNS[allocation.bucket]
    return (LedgerQuery(allocation.tenant.slug).period(allocation_period(allocation))
            .where_sql(COST).where(allocation_id=str(allocation.pk))
            .dimensions("event_id")
            .expressions(f"sum({column}) AS e_share",
                         *(f"any({c}) AS e_{c}" for c in _CARRIED))
            .group_by("event_id").having("e_share != 0").rows())


def allocation_reverse(*, allocation: Allocation, now: datetime | None = None) -> Allocation:
    """Append the REVERSAL entries netting every event's share to zero (also what a FAILED
    allocation managed to write). Reversing twice is a Conflict."""
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    with transaction.atomic():
        locked = Allocation.objects.select_for_update().get(pk=allocation.pk)
        if locked.status == Allocation.Status.REVERSED:
            raise Conflict(f"Allocation {locked.pk} was reversed already "
                           f"({locked.reversed_at:%Y-%m-%d %H:%M} UTC).", field="id")
        if (locked.status == Allocation.Status.APPLYING
                and locked.created_at > now - ABANDONED_AFTER):
            raise Conflict(f"Allocation {locked.pk} is still being applied.", field="id")
        _columns, entries = allocation_entries(locked)
        # The nets are read exactly (Decimal at nine places) and negated in nanos.
        rows = [(event_id, -int(share.scaleb(LEDGER_PLACES)), *carried)
                for event_id, share, *carried in entries]
        _append(locked.tenant.slug, locked, "REVERSAL", rows, now)
        locked.status = Allocation.Status.REVERSED
        locked.reversed_at = now
        _settle(locked.tenant.slug, locked, allocation_period(locked), now)
        locked.save(update_fields=["status", "reversed_at"])
    return locked
