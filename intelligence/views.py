"""Console tabs of Intelligence → COGS & Margins: Signals (the list with acknowledge and
resolve, each linking to its events in Transactions) and Forecast (actuals, the forecast's
band and loss date, and the what-if form). Thin: the queries, services and figures do the
work."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from aforo.console import PageError, current_membership, tab_page
from aforo.errors import DomainError
from aforo.models import Role
from cogs import queries as cogs_queries
from intelligence import figures, services
from intelligence import forecast as forecasting
from intelligence.api import ACK_ROLES, signals_filtered
from intelligence.models import Kind, Severity, Signal
from intelligence.queries import health_signals
from intelligence.whatif import ModelChange, what_if

SIGNALS_SHOWN = 100


def transactions_link(signal: Signal, time_zone: str) -> str:
    """The Transactions tab filtered to the signal's scope over the days of its window (for a
    churn risk, with the week before: the drop is against it)."""
    zone = ZoneInfo(time_zone)
    start = signal.window_start
    if signal.kind == Kind.CHURN_RISK:
        start -= signal.window_end - signal.window_start
    first = start.astimezone(zone).date()
    last = (signal.window_end - timedelta(seconds=1)).astimezone(zone).date()
    params = {"from": first.isoformat(), "to": max(first, last).isoformat(),
              "customerId": signal.customer_id, "productId": signal.product_id}
    return reverse("console-cogs-transactions") + "?" + urlencode(
        {k: v for k, v in params.items() if v})


def _signals(request, tenant, chosen) -> dict:
    params = {k: v for k, v in request.GET.items() if k in ("kind", "state", "severity")}
    params.setdefault("order", request.GET.get("order", "recent"))
    try:
        found = list(signals_filtered(tenant, params)[:SIGNALS_SHOWN])
    except Exception as exc:  # a bad filter (ApiError) is shown in the page
        raise PageError(str(getattr(exc, "detail", exc))) from None
    membership = current_membership(request)
    return {
        "signals": [{"signal": s, "link": transactions_link(s, tenant.time_zone)}
                    for s in found],
        "filters": params, "kinds": Kind.values, "states": Signal.State.values,
        "severities": Severity.values,
        "can_answer": Role(membership.role) in ACK_ROLES,
    }


@login_required
@require_POST
def signal_transition(request: HttpRequest, signal_id: int, action: str) -> HttpResponse:
    if action not in ("acknowledge", "resolve"):
        return HttpResponse(status=404)
    membership = current_membership(request)
    back = reverse("console-cogs-signals") + (
        f"?{request.POST['return_query']}" if request.POST.get("return_query") else "")
    if membership is None or Role(membership.role) not in ACK_ROLES:
        messages.error(request, "Your role may view signals but not answer them.")
        return redirect(back)
    signal = get_object_or_404(Signal, tenant=membership.tenant, pk=signal_id)
    change = services.signal_acknowledge if action == "acknowledge" else services.signal_resolve
    try:
        change(signal=signal, user=request.user, now=datetime.now(timezone.utc))
        messages.success(request, f"Signal “{signal.title}” {signal.state.lower()}.")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect(back)


def _forecast(request, tenant, chosen) -> dict:
    horizon = request.GET.get("horizon", "30d")
    if horizon not in forecasting.HORIZONS:
        raise PageError("The horizon must be 30d, 90d or 12m.")
    product_id = request.GET.get("productId", "").strip() or None
    customer_id = request.GET.get("customerId", "").strip() or None
    result = forecasting.forecast_serve(tenant, horizon=horizon, product_id=product_id,
                                        customer_id=customer_id)
    context = {
        "forecast": result, "horizons": list(forecasting.HORIZONS), "horizon": horizon,
        "product_id": product_id or "", "customer_id": customer_id or "",
        "forecast_figure": figures.forecast_figure(result) if result.points else None,
        "model_choices": sorted({r.key[1] for r in cogs_queries.totals_by(
            tenant, cogs_queries.Dimension.MODEL, chosen.period) if r.key[1]}),
        "target_choices": _priced_models(tenant),
        "what_if": None,
    }
    from_model = request.GET.get("fromModel", "").strip()
    to_model = request.GET.get("toModel", "").strip()
    context.update(from_model=from_model, to_model=to_model)
    if from_model or to_model:
        try:
            result = what_if(tenant=tenant, start=chosen.period.start_at,
                             end=chosen.period.end_at,
                             changes=[ModelChange(from_model=from_model, to_model=to_model)],
                             product_id=product_id, customer_id=customer_id)
        except DomainError as exc:
            raise PageError(f"What-if: {exc.message}") from None
        context.update(what_if=result, what_if_figure=figures.what_if_figure(result))
    return context


def _priced_models(tenant) -> list[str]:
    from ingestion.rate_cards import rate_card_for

    card = rate_card_for(tenant)
    return sorted({model for table in (card.tenant_prices, card.platform_prices)
                   for _provider, model in table})



def health_panel(request, tenant, chosen) -> dict:
    """The Overview's Customer Health Signals tile."""
    return {"health_signals": [{"signal": s, "link": transactions_link(s, tenant.time_zone)}
                               for s in health_signals(tenant)]}


signals = tab_page("signals", _signals)
forecast = tab_page("forecast", _forecast)
