"""Billing writes: plans and subscriptions, invoices imported, generated, finalized and voided."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from aforo.catalog import catalog_register
from aforo.errors import ApiError
from aforo.eventstore import EventStoreError
from aforo.models import Customer, Tenant
from billing.models import (
    ComponentKind,
    Invoice,
    InvoiceLine,
    InvoiceSource,
    InvoiceStatus,
    PriceComponent,
    PriceTier,
    RatePlan,
    Subscription,
    Unit,
)
from billing.rating import plans_changed

log = logging.getLogger(__name__)
CENT = Decimal("0.01")


# --- plans and subscriptions ----------------------------------------------------------------

@dataclass(frozen=True)
class ComponentSpec:
    kind: ComponentKind | str
    unit_price: Decimal = Decimal(0)
    product_id: str = ""
    tiers: Sequence[tuple[Decimal | None, Decimal]] = ()
    rating_events_per_period: int | None = None


def rate_plan_create(*, tenant: Tenant, code: str, name: str = "",
                     components: Sequence[ComponentSpec] = ()) -> RatePlan:
    with transaction.atomic():
        plan = RatePlan.objects.create(tenant=tenant, code=code, name=name)
        for spec in components:
            component = PriceComponent.objects.create(
                plan=plan, kind=ComponentKind(spec.kind), unit_price=spec.unit_price,
                product_id=spec.product_id,
                rating_events_per_period=spec.rating_events_per_period)
            PriceTier.objects.bulk_create([
                PriceTier(component=component, up_to=up_to, unit_price=price)
                for up_to, price in spec.tiers])
    plans_changed(tenant)
    return plan


def subscription_create(*, tenant: Tenant, customer: Customer, plan: RatePlan,
                        starts_at: datetime, ends_at: datetime | None = None) -> Subscription:
    if plan.tenant_id != tenant.pk or customer.tenant_id != tenant.pk:
        raise ApiError("Plan and customer must belong to the tenant.")
    if ends_at is not None and ends_at <= starts_at:
        raise ApiError("ends_at must be after starts_at.", field="endsAt")
    subscription = Subscription.objects.create(tenant=tenant, customer=customer, plan=plan,
                                               starts_at=starts_at, ends_at=ends_at)
    plans_changed(tenant)
    return subscription


# --- invoices -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineSpec:
    line_id: str
    product_id: str
    amount_usd: Decimal
    unit: Unit | str
    description: str = ""
    quantity: Decimal | None = None


def _same_content(invoice: Invoice, customer_id: str, period_start: datetime,
                  period_end: datetime, lines: Sequence[LineSpec]) -> bool:
    held = {(ln.line_id, ln.product_id, ln.amount_usd, ln.unit) for ln in invoice.lines.all()}
    wanted = {(ln.line_id, ln.product_id, Decimal(ln.amount_usd), str(Unit(ln.unit)))
              for ln in lines}
    return (invoice.customer_id == customer_id and invoice.period_start == period_start
            and invoice.period_end == period_end and held == wanted)


def _validate(period_start: datetime, period_end: datetime, lines: Sequence[LineSpec]) -> None:
    if period_end <= period_start:
        raise ApiError("periodEnd must be after periodStart.", field="periodEnd")
    seen = set()
    for i, line in enumerate(lines):
        if line.line_id in seen:
            raise ApiError(f"lineId {line.line_id!r} appears twice.", field=f"lines.{i}.lineId")
        seen.add(line.line_id)
        if Decimal(line.amount_usd).as_tuple().exponent < -9:
            raise ApiError("amountUsd has more than 9 decimals.", field=f"lines.{i}.amountUsd")
        if abs(Decimal(line.amount_usd)) >= Decimal("1e9"):
            raise ApiError("amountUsd is too large.", field=f"lines.{i}.amountUsd")


def _reattribute(tenant: Tenant, invoice_id: str, trigger: str) -> None:
    """Reverse (and redo) an invoice's attribution at once; the nightly run heals a miss."""
    from billing.attribution import attribution_run

    try:
        attribution_run(tenant=tenant, trigger=trigger, invoice_ids=[invoice_id])
    except (ApiError, EventStoreError):
        log.warning("re-attribution of %s deferred to the next run", invoice_id, exc_info=True)


def invoice_import(*, tenant: Tenant, invoice_id: str, customer_id: str,
                   period_start: datetime, period_end: datetime, lines: Sequence[LineSpec],
                   source: InvoiceSource | str = InvoiceSource.API,
                   status: InvoiceStatus | str = InvoiceStatus.FINALIZED) -> Invoice:
    """Store an invoice (finalized unless told otherwise); re-importing one that changed voids
    the earlier version and re-attributes it at once. An identical re-import changes nothing.
    """
    _validate(period_start, period_end, lines)
    current = (Invoice.objects.filter(tenant=tenant, invoice_id=invoice_id)
               .order_by("-version").first())
    if current is not None and current.status == InvoiceStatus(status) and _same_content(
            current, customer_id, period_start, period_end, lines):
        return current
    now = datetime.now(timezone.utc)
    status = InvoiceStatus(status)
    with transaction.atomic():
        if current is not None and current.status == InvoiceStatus.DRAFT:
            current.lines.all().delete()
            invoice = current
            invoice.customer_id, invoice.status = customer_id, status
            invoice.period_start, invoice.period_end = period_start, period_end
        else:
            invoice = Invoice(tenant=tenant, invoice_id=invoice_id, customer_id=customer_id,
                              version=(current.version + 1) if current else 1,
                              period_start=period_start, period_end=period_end,
                              status=status, source=InvoiceSource(source))
        invoice.total_usd = sum((Decimal(ln.amount_usd) for ln in lines), Decimal(0))
        invoice.finalized_at = now if status == InvoiceStatus.FINALIZED else None
        invoice.save()
        InvoiceLine.objects.bulk_create([
            InvoiceLine(invoice=invoice, line_id=ln.line_id, product_id=ln.product_id,
                        amount_usd=Decimal(ln.amount_usd), unit=Unit(ln.unit),
                        description=ln.description[:500], quantity=ln.quantity)
            for ln in lines])
        superseded = current is not None and current.pk != invoice.pk
        if superseded and current.status != InvoiceStatus.VOID:
            current.status, current.voided_at = InvoiceStatus.VOID, now
            current.superseded_by = invoice
            current.save(update_fields=["status", "voided_at", "superseded_by"])
        catalog_register(tenant=tenant, customer_ids={customer_id},
                         products={ln.product_id: "" for ln in lines if ln.product_id})
    if superseded:
        _reattribute(tenant, invoice_id, "REIMPORT")
    return invoice


def invoice_finalize(*, invoice: Invoice) -> Invoice:
    if invoice.status != InvoiceStatus.DRAFT:
        raise ApiError(f"Only a DRAFT invoice can be finalized; this one is {invoice.status}.",
                       code="invalid_state", status_code=409)
    invoice.status, invoice.finalized_at = InvoiceStatus.FINALIZED, datetime.now(timezone.utc)
    invoice.save(update_fields=["status", "finalized_at"])
    return invoice


def invoice_void(*, invoice: Invoice) -> Invoice:
    """Void an invoice and reverse its attribution at once (the next run would otherwise)."""
    if invoice.status == InvoiceStatus.VOID:
        return invoice
    was_finalized = invoice.status == InvoiceStatus.FINALIZED
    invoice.status, invoice.voided_at = InvoiceStatus.VOID, datetime.now(timezone.utc)
    invoice.save(update_fields=["status", "voided_at"])
    if was_finalized:
        _reattribute(invoice.tenant, invoice.invoice_id, "VOID")
    return invoice


def cents_to_usd(cents: int | str) -> Decimal:
    """Stripe's integer cents as exact dollars."""
    if isinstance(cents, bool) or not isinstance(cents, (int, str)):
        raise ApiError("Stripe amounts must be integer cents.")
    return (Decimal(cents) / 100).quantize(CENT)


def money_round(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
