"""The detectors: each turns one grouped query of the tenant's hourly sums into findings, and
`detectors_run` stores them (once each) for a tenant or for every tenant.

- USAGE_ANOMALY: a customer's hour of a billable unit outside mean ± σ of the same hour on
  each of the baseline days (14) before; COST_SPIKE: the same on COGS, per customer and per
  product. The last complete hours are judged (two, so a run that was late or events that
  arrived late are still seen).
- CHURN_RISK: a customer's events in the last complete week (Monday to Sunday in the tenant's
  time zone) down at least the setting against the week before.
- QUOTA_PACING: every pacing subject (budgets; entitlements once they register) projected to
  cross each threshold (80/100/120%) of its limit by the period's end.
- MARGIN_TRIP signals come from Margin Guard's level changes (services), not from here.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from aforo.models import Tenant
from aforo.periods import day_start
from intelligence import queries
from intelligence.models import IntelligenceSettings, Kind, Severity, Signal
from intelligence.pacing import pacing_subjects
from intelligence.services import Finding, intelligence_settings_get, signals_record

log = logging.getLogger(__name__)
HOURS_JUDGED = 2
HOUR = timedelta(hours=1)
UNIT_NAMES = {"EVENTS": "events", "INPUT_TOKENS": "input tokens",
              "OUTPUT_TOKENS": "output tokens", "TOOL_CALLS": "tool calls",
              "REASONING_STEPS": "reasoning steps", "COGS_USD": "COGS"}


@dataclass(frozen=True)
class Context:
    tenant: Tenant
    settings: IntelligenceSettings
    time_zone: str
    now: datetime


def last_complete_hours(now: datetime, count: int = HOURS_JUDGED) -> list[datetime]:
    current = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return [current - HOUR * back for back in range(count, 0, -1)]


def _deviation_severity(z: float, sigma: Decimal) -> str:
    return Severity.CRITICAL if abs(z) >= 2 * float(sigma) else Severity.WARNING


def _hour_findings(context: Context, *, kind: str, group: str, units: dict[str, str],
                   sigma: Decimal, min_change: Decimal = Decimal(0)) -> list[Finding]:
    settings = context.settings
    out = []
    for hour in last_complete_hours(context.now):
        outliers = queries.hour_outliers(
            context.tenant.slug, hour=hour, group=group, units=units,
            baseline_days=settings.baseline_days, min_history_days=settings.min_history_days,
            min_hourly_events=settings.min_hourly_events, sigma=sigma, min_change=min_change)
        by_unit: dict[str, list[queries.HourOutlier]] = {}
        for outlier in outliers:
            by_unit.setdefault(outlier.unit, []).append(outlier)
        for unit, found in by_unit.items():
            samples = queries.samples_by(context.tenant.slug, start=hour, end=hour + HOUR,
                                         group=group, keys=[o.key for o in found], unit=unit)
            for outlier in found:
                sample = samples.get(outlier.key) or queries.Samples([], None)
                direction = "above" if outlier.z > 0 else "below"
                who = "customer" if group == "customer_id" else "product"
                out.append(Finding(
                    kind=kind, unit=unit, threshold=sigma, window_start=hour,
                    window_end=hour + HOUR, value=outlier.value, baseline=outlier.baseline,
                    deviation=round(outlier.z, 4), magnitude=abs(outlier.z) / float(sigma),
                    severity=_deviation_severity(outlier.z, sigma),
                    title=(f"{UNIT_NAMES[unit].capitalize()} of {who} {outlier.key} "
                           f"{abs(outlier.z):.1f}σ {direction} its usual "
                           f"{hour:%H}:00 UTC hour"),
                    sample_event_ids=sample.event_ids, last_event_at=sample.last_event_at,
                    **{group: outlier.key}))
    return out


def usage_anomalies(context: Context) -> list[Finding]:
    return _hour_findings(context, kind=Kind.USAGE_ANOMALY, group="customer_id",
                          units=queries.USAGE_UNITS, sigma=context.settings.anomaly_sigma)


def cost_spikes(context: Context) -> list[Finding]:
    settings = context.settings
    return [finding for group in ("customer_id", "product_id")
            for finding in _hour_findings(
                context, kind=Kind.COST_SPIKE, group=group, units=queries.COST_UNITS,
                sigma=settings.cost_spike_sigma, min_change=settings.cost_spike_min_usd)]


def last_complete_week(now: datetime, time_zone: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 in the tenant's zone, of the week before now's."""
    today = now.astimezone(ZoneInfo(time_zone)).date()
    this_monday = today - timedelta(days=today.weekday())
    return (day_start(this_monday - timedelta(days=7), time_zone),
            day_start(this_monday, time_zone))


def churn_risks(context: Context) -> list[Finding]:
    settings = context.settings
    start, end = last_complete_week(context.now, context.time_zone)
    drops = queries.weekly_drops(context.tenant.slug, week_start=start, week_end=end,
                                 drop_pct=settings.churn_drop_pct,
                                 min_weekly_events=settings.churn_min_weekly_events)
    if not drops:
        return []
    samples = queries.samples_by(context.tenant.slug, start=start, end=end,
                                 group="customer_id", keys=[d.customer_id for d in drops],
                                 unit="EVENTS")
    out = []
    for drop in drops:
        sample = samples.get(drop.customer_id) or queries.Samples([], None)
        change = drop.change_pct
        out.append(Finding(
            kind=Kind.CHURN_RISK, customer_id=drop.customer_id, unit="EVENTS",
            threshold=settings.churn_drop_pct, window_start=start, window_end=end,
            value=Decimal(drop.this_week), baseline=Decimal(drop.last_week), deviation=change,
            magnitude=-change / settings.churn_drop_pct,
            severity=Severity.CRITICAL if change <= -80 else Severity.WARNING,
            title=(f"Customer {drop.customer_id}: {-change:.0f}% fewer events in the week of "
                   f"{start.astimezone(ZoneInfo(context.time_zone)):%Y-%m-%d} than the week "
                   f"before ({drop.this_week:,} against {drop.last_week:,})"),
            sample_event_ids=sample.event_ids, last_event_at=sample.last_event_at))
    return out


def _pacing_severity(threshold: Decimal) -> str:
    if threshold > 100:
        return Severity.CRITICAL
    return Severity.WARNING if threshold >= 100 else Severity.INFO


def quota_pacing(context: Context) -> list[Finding]:
    settings = context.settings
    thresholds = settings.thresholds()
    out = []
    for subject in pacing_subjects(context.tenant, context.now):
        projected = subject.projected(context.now)
        if projected is None or subject.limit <= 0 or \
                subject.elapsed_pct(context.now) < settings.pacing_min_elapsed_pct:
            continue
        pace_pct = projected / subject.limit * 100
        crossed = [t for t in thresholds if pace_pct >= t]
        if not crossed:
            continue
        sample = queries.samples_by(
            context.tenant.slug, start=subject.period_start, end=context.now, group=None,
            keys=[], unit="COGS_USD" if subject.unit == "COGS_USD" else "EVENTS",
            customer_id=subject.customer_id or None,
            product_id=subject.product_id or None)[""]
        for threshold in crossed:
            out.append(Finding(
                kind=Kind.QUOTA_PACING, customer_id=subject.customer_id,
                product_id=subject.product_id, unit=subject.unit, subject=subject.subject,
                threshold=threshold, window_start=subject.period_start,
                window_end=subject.period_end, value=projected, baseline=subject.limit,
                deviation=pace_pct, magnitude=pace_pct / threshold,
                severity=_pacing_severity(threshold),
                title=(f"{subject.name} on pace for {pace_pct:.0f}% of its limit by "
                       f"the period's end (crosses {threshold:.0f}%)"),
                sample_event_ids=sample.event_ids, last_event_at=sample.last_event_at))
    return out


DETECTORS: dict[str, Callable[[Context], list[Finding]]] = {
    Kind.USAGE_ANOMALY: usage_anomalies,
    Kind.COST_SPIKE: cost_spikes,
    Kind.CHURN_RISK: churn_risks,
    Kind.QUOTA_PACING: quota_pacing,
}


def detectors_run(*, tenant: Tenant, now: datetime,
                  kinds: tuple[str, ...] | None = None) -> list[Signal]:
    """Run the detectors for one tenant; returns the signals that are new."""

    context = Context(tenant=tenant, settings=intelligence_settings_get(tenant=tenant),
                      time_zone=tenant.time_zone, now=now)
    stored: list[Signal] = []
    for kind, detector in DETECTORS.items():
        if kinds is not None and kind not in kinds:
            continue
        try:
            findings = detector(context)
        except Exception:  # one failing detector must not stop the others
            log.exception("detector %s failed for tenant %s", kind, tenant.slug)
            continue
        stored.extend(signals_record(tenant=tenant, findings=findings, now=now))
    return stored


def detectors_run_all(*, now: datetime) -> int:
    """Every tenant's detectors (the hourly job); returns how many signals are new."""
    new = 0
    for tenant in Tenant.objects.all():
        new += len(detectors_run(tenant=tenant, now=now))
    return new
