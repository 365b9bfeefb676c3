"""Forecasts of COGS, expected revenue and margin: per day for 30 or 90 days, per calendar month
for 12, for a tenant, a product, a customer or both, with a prediction interval.

The model is statsmodels' ETS (exponential smoothing state space: additive error, damped
additive trend, additive weekly seasonality, the field's standard for daily business series),
fitted on up to 180 days of history ending yesterday in the tenant's time zone. Its intervals
are the model's own: analytic per day, and per month the quantiles of simulated daily paths
summed by month (a month's interval is not the sum of its days' intervals). A short history
drops the season (under 28 days) and then the forecast (under 7 days).

Forecasts are statistics: computed in floating point and rendered as Decimal at six places,
never written to the ledger and never reconciled with it. A fit depends only on the history:
one fit of a series serves every horizon asked of it (kept in this process under a digest of
the history), and the whole forecast of a scope is stored (`ForecastFit`) and served to
requests while it is fresh:

- the hourly job (after the detectors) refits the tenant, each product with history and every
  scope asked for in the last 7 days, for every horizon;
- a request serves the stored forecast if it was fitted today (the tenant's day) within the
  last 70 minutes, else fits the scope now and stores it. Either way the numbers are those of a
  fit on the history read when it was fitted, so a served forecast equals a fresh one on the
  same history to the last digit; history changed since (late events for past days, a night's
  attribution) shows within the hour.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from django.db import IntegrityError, transaction

from aforo.periods import Period, today_in
from cogs.margins import margin_pct
from intelligence.queries import DayActual, daily_actuals

HISTORY_DAYS = 180
SEASONAL_MIN_DAYS = 28
MIN_DAYS = 7
LEVEL = Decimal(80)  # the prediction interval, percent
SIMULATIONS = 400
HORIZONS = {"30d": 30, "90d": 90, "12m": 12}
SIX = Decimal("0.000001")
FRESH_FOR = timedelta(minutes=70)        # the hourly job refits well before this passes
REQUESTED_WITHIN = timedelta(days=7)     # scopes asked for lately stay fitted by the job
FITS_KEPT = 64                           # fitted series kept in this process
REFRESH_BUDGET_S = 120                   # the hourly job's forecast time per tenant
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeriesForecast:
    """A fitted series' forecast: mean and interval per step (or per month), the method."""

    mean: list[float]
    lower: list[float]
    upper: list[float]
    method: str


def _method(n: int) -> tuple[str, dict] | None:
    if n >= SEASONAL_MIN_DAYS:
        return "ETS(A,Ad,A) weekly", {"trend": "add", "damped_trend": True, "seasonal": "add",
                                       "seasonal_periods": 7}
    if n >= MIN_DAYS:
        return "ETS(A,Ad,N)", {"trend": "add", "damped_trend": True}
    return None


def _fit(values: list[float], first_day: date, kind: dict):
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    series = pd.Series(values, index=pd.date_range(first_day, periods=len(values), freq="D"))
    with warnings.catch_warnings():
        # short or flat series make the optimiser talk; the fit is still the best it found
        warnings.simplefilter("ignore")
        return ETSModel(series, error="add", initialization_method="heuristic"
                        if len(values) >= 2 * 7 + 7 else "estimated", **kind).fit(disp=False)


_fits: OrderedDict[str, object] = OrderedDict()
_fits_lock = threading.Lock()


def _fit_once(values: list[float], first_day: date, kind: dict):
    """The fit of a series, reused while this process keeps it (fitting is deterministic: the
    same history gives the same parameters, so reuse changes no number)."""
    key = hashlib.sha256(repr((values, first_day, sorted(kind.items()))).encode()).hexdigest()
    with _fits_lock:
        found = _fits.get(key)
        if found is not None:
            _fits.move_to_end(key)
            return found
    fitted = _fit(values, first_day, kind)
    with _fits_lock:
        _fits[key] = fitted
        while len(_fits) > FITS_KEPT:
            _fits.popitem(last=False)
    return fitted


def forecast_series(values: list[float], *, first_day: date, steps: int,
                    level: Decimal = LEVEL,
                    months: list[tuple[date, int, float]] | None = None) -> SeriesForecast | None:
    """Forecast `steps` days after a daily series starting `first_day`; None when the history
    is too short. With `months` ((first day, days of it forecast, actual so far) per calendar
    month), the days are summed into those months: mean and interval of each month's total."""
    chosen = _method(len(values))
    if chosen is None:
        return None
    method, kind = chosen
    fitted = _fit_once(values, first_day, kind)
    alpha = float(1 - level / 100)
    if months is None:
        frame = fitted.get_prediction(start=len(values), end=len(values) + steps - 1) \
            .summary_frame(alpha=alpha)
        return SeriesForecast(
            mean=[max(0.0, v) for v in frame["mean"]],
            lower=[max(0.0, v) for v in frame["pi_lower"]],
            upper=[max(0.0, v) for v in frame["pi_upper"]], method=method)
    import numpy as np

    paths = np.asarray(fitted.simulate(steps, repetitions=SIMULATIONS, anchor="end",
                                       rng=np.random.default_rng(7)))
    paths = np.clip(paths.reshape(steps, -1), 0, None)  # spend and revenue are never negative
    mean, lower, upper, offset = [], [], [], 0
    for _first, days, actual in months:
        totals = paths[offset:offset + days].sum(axis=0) + actual
        offset += days
        mean.append(float(totals.mean()))
        lower.append(float(np.quantile(totals, alpha / 2)))
        upper.append(float(np.quantile(totals, 1 - alpha / 2)))
    return SeriesForecast(mean=mean, lower=lower, upper=upper, method=method)


def _usd(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(SIX, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class ForecastPoint:
    day: date  # the day, or the first day of the month
    cogs_usd: Decimal
    revenue_usd: Decimal
    cogs_lower: Decimal
    cogs_upper: Decimal
    revenue_lower: Decimal
    revenue_upper: Decimal

    @property
    def margin_pct(self) -> Decimal | None:
        return margin_pct(self.revenue_usd, self.cogs_usd)

    @property
    def loss(self) -> bool:
        return self.cogs_usd > self.revenue_usd


@dataclass(frozen=True)
class Forecast:
    horizon: str
    method: str
    level: Decimal
    history: list[DayActual]
    points: list[ForecastPoint]

    @property
    def first_loss_date(self) -> date | None:
        return next((p.day for p in self.points if p.loss), None)


def _months_ahead(today: date, count: int) -> list[date]:
    first = today.replace(day=1)
    out = []
    for _ in range(count):
        out.append(first)
        first = (first + timedelta(days=32)).replace(day=1)
    return out


def _trimmed(history: list[DayActual]) -> list[DayActual]:
    """The history from its first day with any activity (a new scope's empty past is no
    evidence of zero)."""
    for index, day in enumerate(history):
        if day.cogs_usd or day.revenue_usd:
            return history[index:]
    return []


def history_period(time_zone: str, today: date) -> Period:
    """The days a forecast made on `today` is fitted on: HISTORY_DAYS ending yesterday."""
    return Period(first=today - timedelta(days=HISTORY_DAYS), last=today - timedelta(days=1),
                  time_zone=time_zone)


def scope_forecast(tenant_slug: str, *, time_zone: str, horizon: str,
                   product_id: str | None = None, customer_id: str | None = None,
                   today: date | None = None) -> Forecast:
    """COGS, expected revenue and margin ahead for a scope, from its own daily history, fitted
    now (`forecast_serve` is what requests call)."""
    today = today or today_in(time_zone)
    history = daily_actuals(tenant_slug, history_period(time_zone, today),
                            product_id=product_id, customer_id=customer_id)
    return forecast_from_history(history, horizon=horizon, today=today)


def forecast_from_history(history: list[DayActual], *, horizon: str, today: date) -> Forecast:
    """The forecast made on `today` from a scope's daily history (history_period's days)."""
    steps_asked = HORIZONS[horizon]
    fitted = _trimmed(history)
    months, spec = None, []
    if horizon == "12m":
        firsts = _months_ahead(today, steps_asked)
        end = (firsts[-1] + timedelta(days=32)).replace(day=1)
        steps = (end - today).days
        spec = []
        for first in firsts:
            following = (first + timedelta(days=32)).replace(day=1)
            days = (following - max(first, today)).days
            spec.append((first, days))
    else:
        steps = steps_asked
    first_day = fitted[0].day if fitted else today
    results = {}
    for name in ("cogs_usd", "revenue_usd"):
        values = [float(getattr(d, name)) for d in fitted]
        if horizon == "12m":
            months = [(first, days, sum(float(getattr(d, name)) for d in history
                                        if d.day >= first and d.day < today))
                      for first, days in spec]
        results[name] = forecast_series(values, first_day=first_day, steps=steps,
                                        months=months)
    cogs, revenue = results["cogs_usd"], results["revenue_usd"]
    if cogs is None or revenue is None:
        return Forecast(horizon=horizon, method="NONE (under 7 days of history)", level=LEVEL,
                        history=history, points=[])
    days = [first for first, _days in spec] if horizon == "12m" else [
        today + timedelta(days=n) for n in range(steps)]
    points = [ForecastPoint(day=day, cogs_usd=_usd(cogs.mean[i]),
                            revenue_usd=_usd(revenue.mean[i]), cogs_lower=_usd(cogs.lower[i]),
                            cogs_upper=_usd(cogs.upper[i]),
                            revenue_lower=_usd(revenue.lower[i]),
                            revenue_upper=_usd(revenue.upper[i]))
              for i, day in enumerate(days)]
    return Forecast(horizon=horizon, method=f"{cogs.method}, statsmodels", level=LEVEL,
                    history=history, points=points)


# --- fits stored and served --------------------------------------------------------------------

def _day_of(now: datetime, time_zone: str) -> date:
    return now.astimezone(ZoneInfo(time_zone)).date()


def _dumps(result: Forecast) -> dict:
    """A forecast as JSON, its figures as decimal strings (exact both ways)."""
    return {
        "method": result.method, "level": str(result.level),
        "history": [[d.day.isoformat(), str(d.cogs_usd), str(d.revenue_usd)]
                    for d in result.history],
        "points": [[p.day.isoformat(), str(p.cogs_usd), str(p.revenue_usd), str(p.cogs_lower),
                    str(p.cogs_upper), str(p.revenue_lower), str(p.revenue_upper)]
                   for p in result.points],
    }


def _loads(horizon: str, payload: dict) -> Forecast:
    return Forecast(
        horizon=horizon, method=payload["method"], level=Decimal(payload["level"]),
        history=[DayActual(day=date.fromisoformat(day), cogs_usd=Decimal(cogs),
                           revenue_usd=Decimal(revenue))
                 for day, cogs, revenue in payload["history"]],
        points=[ForecastPoint(day=date.fromisoformat(day), cogs_usd=Decimal(cogs),
                              revenue_usd=Decimal(revenue), cogs_lower=Decimal(c_lo),
                              cogs_upper=Decimal(c_hi), revenue_lower=Decimal(r_lo),
                              revenue_upper=Decimal(r_hi))
                for day, cogs, revenue, c_lo, c_hi, r_lo, r_hi in payload["points"]])


def _store(tenant, *, product_id: str | None, customer_id: str | None, result: Forecast,
           today: date, now: datetime, requested: bool) -> None:
    from intelligence.models import ForecastFit

    key = dict(tenant=tenant, product_id=product_id or "", customer_id=customer_id or "",
               horizon=result.horizon)
    values = dict(as_of=today, fitted_at=now, payload=_dumps(result))
    if requested:
        values["requested_at"] = now.replace(minute=0, second=0, microsecond=0)
    if ForecastFit.objects.filter(**key).update(**values):
        return
    try:
        with transaction.atomic():  # a savepoint when a caller's transaction runs
            ForecastFit.objects.create(**key, **values)
    except IntegrityError:  # a concurrent request or the job stored it first
        ForecastFit.objects.filter(**key).update(**values)


def forecast_serve(tenant, *, horizon: str, product_id: str | None = None,
                   customer_id: str | None = None, now: datetime | None = None) -> Forecast:
    """The scope's forecast for requests: the stored fit while fresh (fitted on the tenant's
    today within FRESH_FOR), else fitted now and stored."""
    from intelligence.models import ForecastFit

    now = now or datetime.now(timezone.utc)
    today = _day_of(now, tenant.time_zone)
    hour = now.replace(minute=0, second=0, microsecond=0)
    key = dict(tenant=tenant, product_id=product_id or "", customer_id=customer_id or "",
               horizon=horizon)
    row = (ForecastFit.objects.filter(**key)
           .values("pk", "as_of", "fitted_at", "requested_at", "payload").first())
    if row and row["as_of"] == today and row["fitted_at"] > now - FRESH_FOR:
        if row["requested_at"] is None or row["requested_at"] < hour:
            ForecastFit.objects.filter(pk=row["pk"]).update(requested_at=hour)
        return _loads(horizon, row["payload"])
    result = scope_forecast(tenant.slug, time_zone=tenant.time_zone, horizon=horizon,
                            product_id=product_id, customer_id=customer_id, today=today)
    _store(tenant, product_id=product_id, customer_id=customer_id, result=result, today=today,
           now=now, requested=True)
    return result


def forecasts_refresh(tenant, *, now: datetime) -> int:
    """Refit the tenant, each product with history and every scope asked for within
    REQUESTED_WITHIN (the latest asked first), for every horizon (one history read and one fit
    per series each), for at most REFRESH_BUDGET_S; returns how many forecasts were stored."""
    from intelligence.models import ForecastFit
    from intelligence.queries import products_with_history

    today = _day_of(now, tenant.time_zone)
    period = history_period(tenant.time_zone, today)
    scopes = [("", ""), *((product, "") for product in products_with_history(tenant.slug,
                                                                             period))]
    for scope in (ForecastFit.objects.filter(tenant=tenant, requested_at__gte=now
                                             - REQUESTED_WITHIN)
                  .order_by("-requested_at", "customer_id", "product_id")
                  .values_list("product_id", "customer_id")):
        if scope not in scopes:  # the most recently asked for first
            scopes.append(scope)
    # scopes nobody asked for lately and the job no longer fits (a product without history)
    ForecastFit.objects.filter(tenant=tenant, fitted_at__lt=now - REQUESTED_WITHIN).exclude(
        requested_at__gte=now - REQUESTED_WITHIN).delete()
    stored = 0
    began = time.monotonic()
    for product_id, customer_id in scopes:
        if time.monotonic() - began > REFRESH_BUDGET_S:
            # the rest are fitted by their next request (and by the next run, first if asked)
            log.info("forecast refresh of tenant %s stopped after %s s: %s scopes left",
                     tenant.slug, REFRESH_BUDGET_S, len(scopes) - stored // len(HORIZONS))
            break
        try:
            history = daily_actuals(tenant.slug, period, product_id=product_id or None,
                                    customer_id=customer_id or None)
            for horizon in HORIZONS:
                _store(tenant, product_id=product_id, customer_id=customer_id,
                       result=forecast_from_history(history, horizon=horizon, today=today),
                       today=today, now=now, requested=False)
                stored += 1
        except Exception:  # one scope failing must not stop the others
            log.exception("forecast of %s/%s failed for tenant %s", product_id, customer_id,
                          tenant.slug)
    return stored


def forecasts_refresh_all(*, now: datetime) -> int:
    """Every tenant's forecasts (the hourly job, after the detectors)."""
    from aforo.models import Tenant

    return sum(forecasts_refresh(tenant, now=now) for tenant in Tenant.objects.all())
