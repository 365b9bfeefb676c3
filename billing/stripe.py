"""Stripe invoices (current API shape and the pre-2025-03-31 one) as Aforo invoices."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from aforo.errors import DomainError, NotFound
from aforo.models import Tenant
from billing.models import Invoice, InvoiceSource, InvoiceStatus, Unit
from billing.services import LineSpec, cents_to_usd, invoice_import, invoice_void

FINAL_STATUSES = {"open", "paid", "uncollectible"}
# Last resort when neither metadata nor the caller's map names a line's unit.
_DESCRIPTION_UNITS = (
    ("input token", Unit.INPUT_TOKENS), ("output token", Unit.OUTPUT_TOKENS),
    ("token", Unit.TOKENS), ("tool call", Unit.TOOL_CALLS), ("reasoning", Unit.REASONING_STEPS),
)


def _id(value: Any) -> str:
    """A Stripe reference: an id string, or an expanded object carrying `id`."""
    if isinstance(value, Mapping):
        return str(value.get("id") or "")
    return str(value or "")


def _price_and_product(line: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, str]:
    """(price object or {}, price id, product id) of a line in either API shape."""
    pricing = line.get("pricing")
    if isinstance(pricing, Mapping):  # current shape: pricing.price_details
        details = pricing.get("price_details") or {}
        return {}, _id(details.get("price")), _id(details.get("product"))
    price = line.get("price")  # legacy shape: the full Price object
    if isinstance(price, Mapping):
        return price, _id(price), _id(price.get("product"))
    return {}, _id(price), ""


def _unit(line: Mapping[str, Any], price: Mapping[str, Any], keys: list[str],
          unit_map: Mapping[str, str]) -> Unit:
    for key in keys:
        if key and key in unit_map:
            return Unit(unit_map[key])
    for meta in (line.get("metadata") or {}, price.get("metadata") or {}):
        if meta.get("aforo_unit"):
            return Unit(meta["aforo_unit"])
    recurring = price.get("recurring") or {}
    if recurring.get("usage_type") == "licensed" or (line.get("quantity") or 0) <= 1:
        return Unit.FLAT
    description = (line.get("description") or "").lower()
    for needle, unit in _DESCRIPTION_UNITS:
        if needle in description:
            return unit
    return Unit.EVENTS


def _line_amount(line: Mapping[str, Any]) -> Decimal:
    """The line's amount net of its discounts, in dollars."""
    amount = cents_to_usd(line.get("amount", 0))
    for discount in line.get("discount_amounts") or []:
        amount -= cents_to_usd(discount.get("amount", 0))
    return amount


def _moment(seconds: Any, field: str) -> datetime:
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise DomainError(f"{field} must be Unix seconds.", field=field)
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def stripe_invoice_lines(payload: Mapping[str, Any], *, product_map: Mapping[str, str],
                         unit_map: Mapping[str, str]) -> list[LineSpec]:
    lines = payload.get("lines") or {}
    if lines.get("has_more"):
        raise DomainError("The invoice's lines are paginated; send them all (has_more is true).",
                       field="lines.has_more")
    specs = []
    for i, line in enumerate(lines.get("data") or []):
        price, price_id, stripe_product = _price_and_product(line)
        if stripe_product in product_map or price_id in product_map:
            # an empty mapping means "every product of the customer"
            product = product_map.get(stripe_product, product_map.get(price_id, ""))
        else:
            product = ((line.get("metadata") or {}).get("aforo_product_id")
                       or (price.get("metadata") or {}).get("aforo_product_id")
                       or stripe_product)
        try:
            unit = _unit(line, price, [price_id, stripe_product], unit_map)
        except ValueError:
            raise DomainError("Unknown unit for the line.", field=f"lines.data.{i}") from None
        quantity = line.get("quantity")
        specs.append(LineSpec(
            line_id=str(line.get("id") or f"line_{i + 1}"), product_id=product,
            amount_usd=_line_amount(line), unit=unit,
            description=str(line.get("description") or ""),
            quantity=Decimal(quantity) if isinstance(quantity, int) else None))
    return specs


def stripe_invoice_import(*, tenant: Tenant, payload: Mapping[str, Any],
                          customer_id: str | None = None,
                          product_map: Mapping[str, str] | None = None,
                          unit_map: Mapping[str, str] | None = None) -> Invoice:
    """Import a Stripe invoice object; cents become exact dollars.

    The customer is `customer_id`, else the invoice's `metadata.aforo_customer_id`, else the
    Stripe customer id. A line's product is the caller's map (Stripe product or price id),
    else `metadata.aforo_product_id` on the line or its price, else the Stripe product id. Its
    unit: the caller's map, `metadata.aforo_unit`, FLAT for licensed or single-quantity lines,
    a unit named in the description ("tokens", "tool calls", ...), else EVENTS.
    A void Stripe invoice voids the imported one; drafts are refused.
    """
    if payload.get("object") != "invoice":
        raise DomainError("Not a Stripe invoice object.", field="object")
    if str(payload.get("currency", "")).lower() != "usd":
        raise DomainError("Only USD invoices can be imported.", field="currency")
    invoice_id = _id(payload)
    if not invoice_id:
        raise DomainError("The invoice has no id.", field="id")
    status = payload.get("status")
    if status == "void":
        existing = (Invoice.objects.filter(tenant=tenant, invoice_id=invoice_id)
                    .order_by("-version").first())
        if existing is None:
            raise NotFound("No imported invoice with this id to void.", field="id")
        return invoice_void(invoice=existing)
    if status not in FINAL_STATUSES:
        raise DomainError(f"Only finalized invoices are imported; this one is {status!r}.",
                       field="status")
    customer = (customer_id or (payload.get("metadata") or {}).get("aforo_customer_id")
                or _id(payload.get("customer")))
    if not customer:
        raise DomainError("The invoice names no customer.", field="customer")
    lines = stripe_invoice_lines(payload, product_map=product_map or {}, unit_map=unit_map or {})
    start = _moment(payload.get("period_start"), "period_start")
    end = _moment(payload.get("period_end"), "period_end")
    if end <= start:
        # One-off invoices carry an empty invoice period; their lines' periods say what usage
        # they bill.
        periods = [ln.get("period") or {} for ln in (payload.get("lines") or {}).get("data", [])]
        starts = [p["start"] for p in periods if isinstance(p.get("start"), int)]
        ends = [p["end"] for p in periods if isinstance(p.get("end"), int)]
        if starts and ends:
            start, end = _moment(min(starts), "period.start"), _moment(max(ends), "period.end")
    return invoice_import(
        tenant=tenant, invoice_id=invoice_id, customer_id=customer,
        period_start=start, period_end=end,
        lines=lines, source=InvoiceSource.STRIPE, status=InvoiceStatus.FINALIZED)
