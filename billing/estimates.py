"""Per-unit revenue estimates: what an event with no provisional revenue is expected to earn,
learnt from the invoice lines attribution has allocated (docs/billing.md, "Estimated revenue").

For a customer and product the rate comes from the customer's latest finalized invoice whose
lines apply to the product (lines of that product, and lines for every product) and matched
events: each line adds its amount / its weight to the rate of its unit (EVENTS and FLAT per
event, INPUT_TOKENS per input token, TOKENS per input and per output token, TOOL_CALLS,
REASONING_STEPS, COGS per nanodollar of cost; a line whose events all weigh 0 was shared out
equally and adds per event). A product's own row (customer '') is the average of every
customer's rates from its latest lines of that product, weighted by the events those lines
covered: the price list of the average event, for a customer never invoiced for the product.

Rates are kept to 18 decimals in `revenue_rates` (the event store), a new version whenever they
change; the read side multiplies them by the unsettled usage in SQL and in Python alike, exact.
"""
from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from aforo import eventstore
from aforo.ledger.query import LedgerQuery, Table
from aforo.models import Product, Tenant
from aforo.shared_cache import cache_count, shared_cache
from billing.models import Invoice, InvoiceLine, InvoiceStatus, RevenueEstimateVersion, Unit

RATE_PLACES = Decimal(1).scaleb(-18)
ZERO = Decimal(0)
RATE_FIELDS = ("per_event", "per_input_token", "per_output_token", "per_tool_call",
               "per_reasoning_step", "per_cogs_nano")
# The rate fields a line's unit adds to.
_UNIT_RATES = {
    Unit.EVENTS: ("per_event",), Unit.FLAT: ("per_event",),
    Unit.INPUT_TOKENS: ("per_input_token",), Unit.OUTPUT_TOKENS: ("per_output_token",),
    Unit.TOKENS: ("per_input_token", "per_output_token"), Unit.TOOL_CALLS: ("per_tool_call",),
    Unit.REASONING_STEPS: ("per_reasoning_step",), Unit.COGS: ("per_cogs_nano",),
}


@dataclass
class Rates:
    """Revenue per unit (USD), and the events the lines they came from covered."""

    values: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(RATE_FIELDS, ZERO))
    events: int = 0

    def add_line(self, line: InvoiceLine) -> None:
        weight = Decimal(line.attributed_weight)
        targets = _UNIT_RATES[Unit(line.unit)]
        if weight == 0:  # shared out equally: per event
            targets, weight = ("per_event",), Decimal(line.attributed_events)
        for name in targets:
            self.values[name] += Decimal(line.amount_usd) / weight
        self.events = max(self.events, line.attributed_events)

    def quantized(self) -> dict[str, Decimal]:
        return {name: value.quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN)
                for name, value in self.values.items()}


def _latest_first(invoice: Invoice) -> tuple:
    return (invoice.period_end, invoice.period_start, invoice.version, invoice.pk)


def revenue_rates_compute(tenant: Tenant) -> list[dict]:
    """The rate rows for the tenant, from its finalized invoices' attributed lines."""
    invoices = (Invoice.objects.filter(tenant=tenant, status=InvoiceStatus.FINALIZED)
                .prefetch_related("lines"))
    by_customer: dict[str, list[Invoice]] = defaultdict(list)
    products = set(Product.objects.filter(tenant=tenant).values_list("external_id", flat=True))
    for invoice in invoices:
        if any(line.attributed_events for line in invoice.lines.all()):
            by_customer[invoice.customer_id].append(invoice)
            products |= {line.product_id for line in invoice.lines.all() if line.product_id}
    rows: list[dict] = []
    pooled: dict[str, Rates] = defaultdict(Rates)  # per product: Σ events × rate, Σ events
    with localcontext() as context:
        context.prec = 80  # exact: 18-decimal rates of 9-decimal amounts over integer weights
        for customer_id, held in sorted(by_customer.items()):
            held.sort(key=_latest_first, reverse=True)
            for product_id in sorted(products):
                for invoice in held:
                    applying = [line for line in invoice.lines.all() if line.attributed_events
                                and line.product_id in (product_id, "")]
                    if applying:
                        break
                else:
                    continue
                own = Rates()
                for line in applying:
                    own.add_line(line)
                rows.append({"customer_id": customer_id, "product_id": product_id,
                             **own.quantized()})
                specific = Rates()
                for line in applying:
                    if line.product_id:
                        specific.add_line(line)
                pool = pooled[product_id]
                for name in RATE_FIELDS:
                    pool.values[name] += specific.values[name] * specific.events
                pool.events += specific.events
        for product_id, pool in sorted(pooled.items()):
            if not pool.events:
                continue
            average = {name: (pool.values[name] / pool.events).quantize(
                RATE_PLACES, rounding=ROUND_HALF_EVEN) for name in RATE_FIELDS}
            rows.append({"customer_id": "", "product_id": product_id, **average})
    return rows


# Whether a tenant has any estimate rate: without one every unsourced event is unknown, and
# readers skip the estimate's join (its cost is a pass over the unsettled basis).
_has_rates: dict[str, tuple[object, bool]] = {}


def _rates_key(tenant_slug: str) -> str:
    return f"aforo:revenue-rates-version:{tenant_slug}"


def rates_changed(tenant_slug: str) -> None:
    """Call after writing a new version of the tenant's revenue_rates."""
    cache_count(_rates_key(tenant_slug))


def has_rates(tenant_slug: str) -> bool:
    version = shared_cache().get(_rates_key(tenant_slug), 0)
    held = _has_rates.get(tenant_slug)
    if held is None or held[0] != version:
        found = (LedgerQuery(tenant_slug, Table.REVENUE_RATES).latest_rates()
                 .where_sql("product_id != ''").expressions("count() AS n").one())
        held = _has_rates[tenant_slug] = (version, int(found["n"]) > 0)
    return held[1]


def _fingerprint(rows: list[dict]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(repr(sorted(row.items())).encode())
    return digest.hexdigest()


def revenue_rates_refresh(*, tenant: Tenant) -> int | None:
    """Write a new version of the tenant's rates if they changed; returns it (None if not)."""
    rows = revenue_rates_compute(tenant)
    fingerprint = _fingerprint(rows)
    held = RevenueEstimateVersion.objects.filter(tenant=tenant).first()
    if held is not None and held.fingerprint == fingerprint:
        return None
    version = max(int(time.time() * 1000), (held.version + 1) if held else 0)
    # An empty version still goes in (one product-less row), so rates that disappear (every
    # invoice voided) stop applying.
    eventstore.insert("revenue_rates", [
        {"tenant_id": tenant.slug, "version": version, **row}
        for row in rows or [{"customer_id": "", "product_id": "",
                             **dict.fromkeys(RATE_FIELDS, ZERO)}]])
    RevenueEstimateVersion.objects.update_or_create(
        tenant=tenant, defaults={"version": version, "fingerprint": fingerprint})
    rates_changed(tenant.slug)
    return version
