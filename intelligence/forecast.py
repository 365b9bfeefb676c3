"""Forecasts of COGS, expected revenue and margin: per day for 30 or 90 days, per calendar month
for 12, for a tenant, a product, a customer or both, with a prediction interval.

The model is statsmodels' ETS (exponential smoothing state space: additive error, damped
additive trend, additive weekly seasonality, the field's standard for daily business series),
fitted on up to 180 days of history ending yesterday in the tenant's time zone. Its intervals
are the model's own: analytic per day, and per month the quantiles of simulated daily paths
summed by month (a month's interval is not the sum of its days' intervals). A short history
drops the season (under 28 days) and then the forecast (under 7 days).

Forecasts are statistics: computed in floating point and rendered as Decimal at six places,
never written to the ledger and never reconciled with it. A fit depends only on the history,
so it is cached under a digest of that history: the same numbers are never fitted twice.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from aforo.periods import Period, today_in
from cogs.margins import margin_pct
from intelligence.queries import DayActual, daily_actuals

HISTORY_DAYS = 180
SEASONAL_MIN_DAYS = 28
MIN_DAYS = 7
LEVEL = Decimal(80)  # the prediction interval, percent
SIMULATIONS = 400
HORIZONS = {"30d": 30, "90d": 90, "12m": 12}
CACHE_SECONDS = 3600
SIX = Decimal("0.000001")


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
    fitted = _fit(values, first_day, kind)
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


def _cached_series(key_parts: tuple, values: list[float], **kwargs) -> SeriesForecast | None:
    from django.core.cache import cache

    digest = hashlib.sha256(repr((key_parts, values, sorted(kwargs.items()))).encode())
    key = f"intelligence:forecast:{digest.hexdigest()}"
    found = cache.get(key)
    if found is not None:
        return found or None  # an empty tuple caches "too short"
    result = forecast_series(values, **kwargs)
    cache.set(key, result or (), CACHE_SECONDS)
    return result


def scope_forecast(tenant_slug: str, *, time_zone: str, horizon: str,
                   product_id: str | None = None, customer_id: str | None = None,
                   today: date | None = None) -> Forecast:
    """COGS, expected revenue and margin ahead for a scope, from its own daily history."""
    steps_asked = HORIZONS[horizon]
    today = today or today_in(time_zone)
    history_period = Period(first=today - timedelta(days=HISTORY_DAYS), last=today - timedelta(
        days=1), time_zone=time_zone)
    history = daily_actuals(tenant_slug, history_period, product_id=product_id,
                            customer_id=customer_id)
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
        results[name] = _cached_series(
            (tenant_slug, product_id, customer_id, name), values, first_day=first_day,
            steps=steps, months=months)
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
