"""Signals: storing a detection once however often or concurrently it is found, routing new
ones to the alert rules that ask for their kind, acknowledging and resolving, the settings."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import IntegrityError, transaction

from aforo.errors import Conflict, DomainError
from aforo.models import Tenant
from aforo.money import ledger
from intelligence.models import IntelligenceSettings, Kind, Severity, Signal

log = logging.getLogger(__name__)
FOUR_PLACES = Decimal("0.0001")


def _four(value: Decimal | float | None) -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(FOUR_PLACES, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Finding:
    """What a detector found: a signal before it is stored."""

    kind: str
    title: str
    threshold: Decimal
    window_start: datetime
    window_end: datetime
    value: Decimal
    severity: str
    customer_id: str = ""
    product_id: str = ""
    unit: str = ""
    subject: str = ""
    baseline: Decimal | None = None
    deviation: Decimal | float | None = None
    magnitude: Decimal | float = Decimal(1)
    sample_event_ids: list[str] = field(default_factory=list)
    last_event_at: datetime | None = None


def signal_record(*, tenant: Tenant, finding: Finding, now: datetime) -> Signal | None:
    """Store a finding as a signal and route it; None when that signal exists already.

    The unique key (kind, scope, unit, subject, threshold, window) decides: of two detectors
    storing the same finding at once, the second insert fails inside its savepoint and
    returns None, so nothing is stored or sent twice.
    """
    key = dict(tenant=tenant, kind=finding.kind, customer_id=finding.customer_id,
               product_id=finding.product_id, unit=finding.unit, subject=finding.subject,
               threshold=finding.threshold.quantize(FOUR_PLACES),
               window_start=finding.window_start, window_end=finding.window_end)
    if Signal.objects.filter(**key).exists():
        return None
    try:
        with transaction.atomic():
            signal = Signal.objects.create(
                **key, value=ledger(finding.value),
                baseline=None if finding.baseline is None
                else ledger(finding.baseline),
                deviation=_four(finding.deviation), magnitude=_four(finding.magnitude),
                severity=finding.severity, title=finding.title[:300],
                sample_event_ids=list(finding.sample_event_ids), detected_at=now,
                last_event_at=finding.last_event_at)
            _route(signal, now)
    except IntegrityError:
        if Signal.objects.filter(**key).exists():
            return None  # stored by a concurrent detector
        raise
    return signal


def _route(signal: Signal, now: datetime) -> None:
    """Alerts for the rules whose source is SIGNAL and that ask for this kind and severity
    (budgets sends them with every alert)."""
    from budgets.services import signal_alerts_fire

    signal_alerts_fire(
        tenant=signal.tenant, signal_id=signal.pk, kind=signal.kind, severity=signal.severity,
        title=signal.title, value=signal.value, threshold=signal.threshold,
        start=signal.window_start, end=signal.window_end, customer_id=signal.customer_id,
        product_id=signal.product_id, now=now)


def signals_record(*, tenant: Tenant, findings: list[Finding], now: datetime) -> list[Signal]:
    stored = []
    for finding in findings:
        signal = signal_record(tenant=tenant, finding=finding, now=now)
        if signal is not None:
            stored.append(signal)
    return stored


# --- the operator's answer ---------------------------------------------------------------

def signal_acknowledge(*, signal: Signal, user: Any, now: datetime) -> Signal:
    if signal.state != Signal.State.OPEN:
        raise Conflict(f"Only an OPEN signal can be acknowledged; this one is {signal.state}.",
                       field="state")
    signal.state, signal.acknowledged_at = Signal.State.ACKNOWLEDGED, now
    signal.acknowledged_by = user if getattr(user, "pk", None) else None
    signal.save(update_fields=["state", "acknowledged_by", "acknowledged_at"])
    return signal


def signal_resolve(*, signal: Signal, user: Any, now: datetime) -> Signal:
    if signal.state == Signal.State.RESOLVED:
        raise Conflict("This signal is already resolved.", field="state")
    signal.state, signal.resolved_at = Signal.State.RESOLVED, now
    signal.resolved_by = getattr(user, "username", "") or "api-token"
    signal.save(update_fields=["state", "resolved_by", "resolved_at"])
    return signal


# --- settings ------------------------------------------------------------------------------

def intelligence_settings_get(*, tenant: Tenant) -> IntelligenceSettings:
    """The tenant's detector settings, or the defaults (unsaved)."""
    return (IntelligenceSettings.objects.filter(tenant=tenant).first()
            or IntelligenceSettings(tenant=tenant))


_POSITIVE = ("anomaly_sigma", "cost_spike_sigma", "baseline_days")
_PERCENT = ("churn_drop_pct", "pacing_min_elapsed_pct")


def intelligence_settings_update(*, tenant: Tenant, **changes: Any) -> IntelligenceSettings:
    """Change some settings; the rest keep their values."""
    current = intelligence_settings_get(tenant=tenant)
    for name, value in changes.items():
        if value is None:
            continue
        if not hasattr(current, name) or name in ("id", "tenant", "updated_at"):
            raise DomainError(f"No setting {name!r}.", field=name)
        if name in _POSITIVE and value <= 0:
            raise DomainError(f"{name} must be greater than 0.", field=name)
        if name in _PERCENT and not (0 < value <= 100):
            raise DomainError(f"{name} must be a percentage above 0 and at most 100.",
                              field=name)
        if name == "pacing_thresholds" and (
                not isinstance(value, list) or any(
                    not isinstance(t, (int, float, Decimal, str)) or Decimal(str(t)) <= 0
                    for t in value)):
            raise DomainError("pacing_thresholds must be a list of percentages above 0.",
                              field=name)
        setattr(current, name, value)
    if current.baseline_days < 2:
        raise DomainError("baseline_days must be at least 2.", field="baseline_days")
    if current.min_history_days > current.baseline_days:
        raise DomainError("min_history_days cannot exceed baseline_days.",
                          field="min_history_days")
    current.save()
    return current


# --- Margin Guard's level changes, as signals ------------------------------------------------

LEVEL_SEVERITY = {0: Severity.INFO, 1: Severity.WARNING, 2: Severity.WARNING,
                  3: Severity.CRITICAL}


def signal_record_margin_trip(action: Any, policy: Any) -> Signal | None:
    """The level-change hook (margin_guard.hooks): one MARGIN_TRIP signal per GuardAction,
    naming the scope's most recent events of the guard's window."""
    from aforo.periods import window_bounds
    from intelligence.queries import samples_by
    from margin_guard.models import Level

    tenant = action.tenant
    start, end = window_bounds(policy.window, action.at,
                               tenant.time_zone)
    floors = {Level.ALERT: policy.alert_below_pct, Level.THROTTLE: policy.throttle_below_pct,
              Level.BLOCK: policy.block_below_pct}
    floor = floors.get(action.to_level) or floors.get(action.from_level) or Decimal(0)
    margin = action.margin_pct
    samples = samples_by(tenant.slug, start=start, end=action.at, group=None, keys=[],
                         unit="EVENTS", customer_id=action.customer_id,
                         product_id=action.product_id or None)[""]
    to_name, from_name = Level(action.to_level).label, Level(action.from_level).label
    scope = action.customer_id + (f" / {action.product_id}" if action.product_id else "")
    margin_text = f"{margin:.1f}%" if margin is not None else "no revenue"
    finding = Finding(
        kind=Kind.MARGIN_TRIP, customer_id=action.customer_id, product_id=action.product_id,
        unit="MARGIN_PCT", subject=f"guard-action:{action.pk}", threshold=Decimal(floor),
        window_start=start, window_end=end, value=Decimal(margin or 0), baseline=Decimal(floor),
        deviation=(margin - floor) if margin is not None else None,
        magnitude=Decimal(max(action.to_level, 1)), severity=LEVEL_SEVERITY[action.to_level],
        title=f"Margin Guard: {scope} {from_name} → {to_name} at margin {margin_text}",
        sample_event_ids=samples.event_ids, last_event_at=samples.last_event_at)
    return signal_record(tenant=tenant, finding=finding, now=action.at)
