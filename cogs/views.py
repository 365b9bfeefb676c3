"""Console tabs of Intelligence → COGS & Margins: one thin view per tab over `cogs.queries`, in
the console's tabbed frame (aforo.console.tab_page).

Every number comes from the same query functions as the API, so the console and
/api/v1/analytics/cogs/dashboard never disagree.
"""
from __future__ import annotations

import logging
import math

from aforo.console import ConsolePeriod, PageError, overview_panels, query_link, tab_page
from aforo.eventstore import EventStoreError, EventStoreUnavailable
from aforo.models import Customer, Tenant
from aforo.pagination import MAX_PAGE
from aforo.periods import today_in
from cogs import figures, queries, services
from cogs.models import CogsSettings
from cogs.queries import Dimension, Period, Totals
from cogs.templatetags.cogs_format import usd_text

log = logging.getLogger(__name__)

DEFAULT_PRESET = "30d"
PAGE_SIZES = (25, 50, 100, 200)
CUSTOMERS_PER_PAGE = 50
ANOMALIES_SHOWN = 10
TOP_N = 15  # bars in a breakdown chart

# --- helpers over query results -----------------------------------------------------------

def _floors(settings: CogsSettings) -> queries.TagFloors:
    return queries.TagFloors(at_risk_pct=settings.at_risk_floor_pct,
                             high_value_pct=settings.high_value_floor_pct)


def _customer_names(tenant: Tenant, ids: list[str]) -> dict[str, str]:
    """Display names from the catalog for the customers on screen (the id where none)."""
    named = Customer.objects.filter(tenant=tenant, external_id__in=ids).exclude(name="")
    return dict(named.values_list("external_id", "name"))


def _settling_hint(totals: Totals) -> str:
    """"+ $X settling (estimated $a / carried $b / rated $c)", or nothing."""
    if not totals.settling_revenue_usd:
        return ""
    parts = [f"{name} {usd_text(amount)}" for name, amount in (
        ("estimated", totals.estimated_usd), ("carried", totals.carried_usd),
        ("rated", totals.rated_usd)) if amount]
    return f"; + {usd_text(totals.settling_revenue_usd)} settling ({' / '.join(parts)})"


def _share(part, whole) -> float | None:
    return float(part / whole * 100) if whole else None


# --- Overview -----------------------------------------------------------------------------

def _overview(request, tenant: Tenant, chosen: ConsolePeriod) -> dict:
    settings = services.cogs_settings_get(tenant=tenant)
    period = chosen.period
    headline = queries.overview(tenant, period, estimate=True)
    totals = headline.totals
    days = queries.daily_series(tenant, period)
    providers = sorted(queries.totals_by(tenant, Dimension.PROVIDER, period),
                       key=lambda r: (-r.cogs_usd, r.key))
    products = queries.products_breakdown(tenant, period)
    # Today's anomalies (the period's last day): events costing ≥ the multiplier × the average
    # of their product and model that day. One day also keeps the scan cheap at any period.
    anomaly_day = Period(first=period.last, last=period.last, time_zone=period.time_zone)
    # If the scan fails, the card says so and the rest of the page still shows (an
    # unreachable store fails the whole page above).
    anomaly_error = None
    try:
        found, anomaly_count = queries.anomalies(tenant, anomaly_day,
                                                 multiplier=settings.anomaly_multiplier,
                                                 limit=ANOMALIES_SHOWN)
    except EventStoreUnavailable:
        raise
    except EventStoreError:
        log.exception("console: the anomaly query failed")
        found, anomaly_count = [], None
        anomaly_error = "The anomaly scan failed; it has been logged. The other figures are fine."
    kpis = [
        ("total-cogs", "Total COGS", "usd", totals.cogs_usd,
         "AI inference + infrastructure + gateway fees + unclassified"),
        ("revenue", "Revenue", "usd", totals.revenue_usd,
         "Attributed from finalized invoice lines" + _settling_hint(totals)),
        ("gross-margin", "Gross Margin", "pct", totals.margin_pct,
         "(Revenue − COGS) / Revenue"),
        ("expected-margin", "Expected Margin", "pct", totals.expected_margin_pct,
         f"{usd_text(totals.expected_margin_usd)} on {usd_text(totals.expected_revenue_usd)} "
         "expected revenue (attributed + settling)"),
        ("cost-per-event", "Cost / Event", "usd_exact", headline.cost_per_event_usd,
         f"{totals.event_count:,} events"),
        ("ai-spend", "AI Model Spend", "usd", totals.ai_cogs_usd, "The AI-inference slice"),
        ("active-products", "Active Products", "count", headline.active_products,
         "With at least one event"),
    ]
    has_data = totals.event_count > 0 or totals.revenue_usd != 0
    return {
        **overview_panels(request, tenant, chosen),
        "kpis": kpis, "totals": totals, "has_data": has_data, "settling_totals": totals,
        "trend_figure": figures.trend_figure(days) if has_data else None,
        "provider_figure": figures.donut_figure(
            [r.key[0] for r in providers], [r.cogs_usd for r in providers],
            "Spend by provider") if any(r.cogs_usd for r in providers) else None,
        "products": products,
        "anomalies": found, "anomaly_count": anomaly_count, "anomaly_error": anomaly_error,
        "anomaly_multiplier": settings.anomaly_multiplier, "anomaly_day": period.last,
        "anomaly_today": period.last == today_in(tenant.time_zone),
    }


# --- P&L Analysis -------------------------------------------------------------------------

CUSTOMER_SORTS = {order.value: order for order in queries.CustomerOrder}


def _pnl(request, tenant: Tenant, chosen: ConsolePeriod) -> dict:
    settings = services.cogs_settings_get(tenant=tenant)
    period = chosen.period
    products = queries.products_breakdown(tenant, period, estimate=True)
    totals = queries.totals_sum(products)
    unit = queries.unit_economics(totals, settings.fixed_costs_per_month_usd)
    floors = _floors(settings)
    # The engine ranks, tags, counts and pages the customers: only the page shown comes back.
    tag_counts, customer_count = queries.customer_tag_counts(tenant, period, floors)

    sort = request.GET.get("sort", "margin")
    if sort not in CUSTOMER_SORTS:
        sort = "margin"
    direction = request.GET.get("dir", "asc" if sort in ("customer", "tag") else "desc")
    direction = direction if direction in ("asc", "desc") else "desc"
    pages = max(1, math.ceil(customer_count / CUSTOMERS_PER_PAGE))
    page = _int_param(request, "page", 0, minimum=0)
    page = min(page, pages - 1)
    found = queries.customer_ledger(tenant, period, floors, order=CUSTOMER_SORTS[sort],
                                    descending=direction == "desc",
                                    offset=page * CUSTOMERS_PER_PAGE, limit=CUSTOMERS_PER_PAGE)
    names = _customer_names(tenant, [row.customer_id for row in found])
    shown = [{"id": row.customer_id, "totals": row, "tag": row.tag.value if row.tag else "",
              "name": names.get(row.customer_id, "")} for row in found]

    base = query_link({**chosen.params})[1:]
    headers = []
    for key, title in (("customer", "Customer"), ("tag", "Tag"), ("events", "Events"),
                       ("revenue", "Revenue"), ("cogs", "COGS"), ("margin", "Margin"),
                       ("margin_pct", "Margin %")):
        active = key == sort
        flip = "asc" if active and direction == "desc" else "desc"
        if not active and key in ("customer", "tag"):
            flip = "asc"
        headers.append({"key": key, "title": title, "active": active,
                        "aria_sort": ("descending" if direction == "desc" else "ascending")
                        if active else "none",
                        "href": f"?{base}&sort={key}&dir={flip}#customers"})
    ranked = sorted(products, key=lambda r: (-r.margin_usd, r.key))
    return {
        "products": ranked,
        "margin_figure": figures.margin_figure(
            [r.key[0] for r in ranked], [r.margin_usd for r in ranked]) if ranked else None,
        "product_totals": totals, "unit": unit, "settling_totals": totals,
        "fixed_costs": settings.fixed_costs_per_month_usd,
        "customers": shown, "customer_count": customer_count,
        "tag_counts": {tag.value: n for tag, n in tag_counts.items()},
        "customer_headers": headers, "floors": floors,
        "customer_page": page, "customer_pages": pages,
        "customer_prev": f"?{base}&sort={sort}&dir={direction}&page={page - 1}#customers"
        if page > 0 else None,
        "customer_next": f"?{base}&sort={sort}&dir={direction}&page={page + 1}#customers"
        if page + 1 < pages else None,
    }


def _int_param(request, name: str, default: int, *, minimum: int = 0,
               maximum: int | None = None) -> int:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PageError(f"“{name}” must be a whole number.") from None
    if value < minimum:
        raise PageError(f"“{name}” must be at least {minimum}.")
    return min(value, MAX_PAGE if maximum is None else maximum)


# --- Cost Breakdown -----------------------------------------------------------------------

def _breakdown(request, tenant: Tenant, chosen: ConsolePeriod) -> dict:
    period = chosen.period
    products = queries.products_breakdown(tenant, period)
    totals = queries.totals_sum(products)
    providers = sorted(queries.totals_by(tenant, Dimension.PROVIDER, period, estimate=True),
                       key=lambda r: (-r.cogs_usd, r.key))
    models = queries.models_breakdown(tenant, period, estimate=True)
    customers = queries.customers_breakdown(tenant, period, limit=TOP_N)
    names = _customer_names(tenant, [c.key[0] for c in customers])
    segments = [
        {"label": label, "css": css, "amount": getattr(totals, attribute),
         "share": _share(getattr(totals, attribute), totals.cogs_usd)}
        for label, attribute, css in figures.COMPOSITION_SEGMENTS
    ]
    has_cost = totals.event_count > 0
    return {
        "totals": totals, "segments": segments, "has_data": has_cost,
        "allocated": queries.allocated_cogs(tenant, period),
        "unclassified_share": _share(totals.unclassified_cogs_usd, totals.cogs_usd),
        "composition_figure": figures.composition_figure(totals) if totals.cogs_usd else None,
        "providers": [{"totals": r, "share": _share(r.cogs_usd, totals.cogs_usd)}
                      for r in providers],
        "provider_figure": _bars(providers, "COGS by provider"),
        "models": models,
        "products": products,
        "product_figure": _bars(products[:TOP_N], "COGS by product"),
        "customers": [{"totals": c, "name": names.get(c.key[0], "")} for c in customers],
        "customer_figure": _bars(customers, "Customers with the highest COGS"),
        "token_cost_per_1k": queries.cost_per_1k_tokens(totals),
        "output_share": _share(totals.output_tokens, totals.total_tokens),
    }


def _bars(rows: list[Totals], title: str) -> dict | None:
    if not any(r.cogs_usd for r in rows):
        return None
    return figures.bar_figure([r.key[0] for r in rows], [r.cogs_usd for r in rows], title)


# --- Transactions -------------------------------------------------------------------------

def _transactions(request, tenant: Tenant, chosen: ConsolePeriod) -> dict:
    period = chosen.period
    filters = queries.TransactionFilters(
        product_id=request.GET.get("productId") or None,
        customer_id=request.GET.get("customerId", "").strip() or None,
        provider=request.GET.get("provider") or None,
    )
    size = _int_param(request, "size", 25, minimum=1, maximum=PAGE_SIZES[-1])
    page = _int_param(request, "page", 0, minimum=0)
    rows, total = queries.transactions_page(tenant, period, filters, offset=page * size,
                                            limit=size)
    pages = math.ceil(total / size) if total else 0
    products = sorted(r.key[0] for r in queries.totals_by(tenant, Dimension.PRODUCT, period))
    providers = sorted(r.key[0] for r in queries.totals_by(tenant, Dimension.PROVIDER, period))
    kept = {**chosen.params, "productId": filters.product_id or "",
            "customerId": filters.customer_id or "", "provider": filters.provider or "",
            "size": size if size != 25 else ""}
    return {
        "rows": rows, "total": total, "page": page, "pages": pages, "size": size,
        "sizes": PAGE_SIZES, "filters": filters, "filtered": any(
            (filters.product_id, filters.customer_id, filters.provider)),
        "product_choices": products, "provider_choices": providers,
        "first_row": page * size + 1 if rows else 0, "last_row": page * size + len(rows),
        "prev_link": query_link({**kept, "page": page - 1}) if page > 0 else None,
        "next_link": query_link({**kept, "page": page + 1}) if page + 1 < pages else None,
        "live_allowed": page == 0 and period.last >= today_in(tenant.time_zone),
    }


overview = tab_page("overview", _overview)
pnl = tab_page("pnl", _pnl)
breakdown = tab_page("breakdown", _breakdown)
transactions = tab_page("transactions", _transactions)
