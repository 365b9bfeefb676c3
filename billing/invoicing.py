"""Invoices from subscriptions: each customer's usage of a closed period priced by its plan."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from decimal import Decimal

from aforo.models import Tenant
from billing import queries
from billing.models import (
    COMPONENT_UNIT,
    ComponentKind,
    Invoice,
    InvoiceSource,
    InvoiceStatus,
    PriceComponent,
    Subscription,
)
from billing.services import LineSpec, invoice_import, money_round

_THOUSAND = Decimal(1000)


def month_bounds(period: str) -> tuple[datetime, datetime]:
    """"2026-10" -> [2026-10-01, 2026-11-01) in UTC."""
    year, month = (int(x) for x in period.split("-"))
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


def _quantity(kind: str, usage: dict) -> Decimal:
    k = ComponentKind
    return {
        k.PER_EVENT: Decimal(usage["events"]),
        k.PER_1K_INPUT_TOKENS: Decimal(usage["input_tokens"]),
        k.PER_1K_OUTPUT_TOKENS: Decimal(usage["output_tokens"]),
        k.PER_1K_TOKENS: Decimal(usage["input_tokens"] + usage["output_tokens"]),
        k.PER_TOOL_CALL: Decimal(usage["tool_calls"]),
        k.PER_REASONING_STEP: Decimal(usage["reasoning_steps"]),
        k.MARKUP_PCT: Decimal(usage["cogs_usd"]),
    }[kind]


def component_charge(component: PriceComponent, quantity: Decimal) -> Decimal:
    """The charge for a period's quantity, before rounding to the cent.

    Volume tiers price every unit at the tier the total reaches. Token components are priced
    per 1K tokens; a markup charges COGS × (1 + pct/100).
    """
    if component.kind == ComponentKind.MARKUP_PCT:
        return quantity * (1 + component.unit_price / 100)
    price = component.unit_price
    tiers = list(component.tiers.all())
    if tiers:
        price = tiers[-1].unit_price
        for tier in tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                price = tier.unit_price
                break
    per = _THOUSAND if component.kind in (ComponentKind.PER_1K_INPUT_TOKENS,
                                          ComponentKind.PER_1K_OUTPUT_TOKENS,
                                          ComponentKind.PER_1K_TOKENS) else Decimal(1)
    return quantity / per * price


def invoice_lines_for(subscription: Subscription, usage: dict[str, dict]) -> list[LineSpec]:
    """Lines of one subscription: per component, per product it applies to and was used."""
    lines = []
    prefix = f"sub{subscription.pk}"
    for component in subscription.plan.components.all():
        if component.kind == ComponentKind.FLAT_FEE:
            lines.append(LineSpec(
                line_id=f"{prefix}-flat-{component.pk}", product_id=component.product_id,
                amount_usd=money_round(component.unit_price), unit=COMPONENT_UNIT[component.kind],
                description=f"{subscription.plan} flat fee"))
            continue
        products = [component.product_id] if component.product_id else sorted(usage)
        for product in products:
            if product not in usage:
                continue
            quantity = _quantity(component.kind, usage[product])
            amount = money_round(component_charge(component, quantity))
            if not amount:
                continue
            lines.append(LineSpec(
                line_id=f"{prefix}-{component.kind.lower()}-{component.pk}-{product or 'none'}",
                product_id=product, amount_usd=amount, unit=COMPONENT_UNIT[component.kind],
                description=f"{component.kind} {product}", quantity=quantity))
    return lines


def invoices_generate(*, tenant: Tenant, period_start: datetime, period_end: datetime,
                      finalize: bool = True) -> list[Invoice]:
    """One invoice per subscribed customer for [period_start, period_end).

    Its id is `aforo-<customer>-<YYYY-MM-DD>` (the period start); running again re-imports it,
    which changes nothing unless late events changed the usage.
    """
    subscriptions = list(
        Subscription.objects.filter(tenant=tenant, starts_at__lt=period_end)
        .exclude(ends_at__lte=period_start)
        .select_related("customer", "plan").prefetch_related("plan__components__tiers")
        .order_by("customer__external_id", "starts_at"))
    by_customer: dict[str, list[Subscription]] = defaultdict(list)
    for sub in subscriptions:
        by_customer[sub.customer.external_id].append(sub)
    invoices = []
    for customer_id, subs in by_customer.items():
        lines: list[LineSpec] = []
        for sub in subs:
            start = max(period_start, sub.starts_at)
            end = min(period_end, sub.ends_at) if sub.ends_at else period_end
            rows = queries.usage_by_customer_product(tenant.slug, start=start, end=end,
                                                     customer_ids=[customer_id])
            usage = {row["product_id"]: row for row in rows}
            lines.extend(invoice_lines_for(sub, usage))
        invoices.append(invoice_import(
            tenant=tenant, invoice_id=f"aforo-{customer_id}-{period_start:%Y-%m-%d}",
            customer_id=customer_id, period_start=period_start, period_end=period_end,
            lines=lines, source=InvoiceSource.GENERATED,
            status=InvoiceStatus.FINALIZED if finalize else InvoiceStatus.DRAFT))
    return invoices
