"""The Usage console tab: each billable unit's total and daily trend, the top customers of a
unit, and every unit per customer and per product type (cogs.queries.usage, as the API)."""
from __future__ import annotations

from aforo.console import PageError, tab_page
from cogs import figures
from cogs.queries.usage import (
    Unit,
    usage_by_billable_unit,
    usage_by_customer,
    usage_by_product_type,
)

CUSTOMERS_SHOWN = 50


def _usage(request, tenant, chosen) -> dict:
    raw = request.GET.get("unit", Unit.EVENTS.value).upper()
    try:
        unit = Unit(raw)
    except ValueError:
        raise PageError(f"The unit must be one of {', '.join(Unit)}.") from None
    units = usage_by_billable_unit(tenant, chosen.period, top=10)
    chosen_unit = next(u for u in units if u.unit is unit)
    active = [u for u in units if u.total]
    return {
        "units": units, "unit": unit, "unit_choices": list(Unit),
        "trend_figure": figures.usage_trend_figure(
            chosen.period.days, {u.unit.value: [q for _d, q in u.daily] for u in active})
        if active else None,
        "top_figure": figures.quantity_bar_figure(
            [c for c, _q in chosen_unit.top_customers],
            [q for _c, q in chosen_unit.top_customers], f"Top customers by {unit.value}")
        if chosen_unit.top_customers else None,
        "customers": usage_by_customer(tenant, chosen.period, limit=CUSTOMERS_SHOWN),
        "product_types": usage_by_product_type(tenant, chosen.period),
    }


usage = tab_page("usage", _usage)
