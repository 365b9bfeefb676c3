"""COGS writes: the tenant's settings behind the dashboard definitions."""
from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aforo.errors import DomainError
from aforo.models import Tenant
from cogs.models import CogsSettings

_UNSET = object()


def cogs_settings_get(*, tenant: Tenant) -> CogsSettings:
    """The tenant's settings, or the defaults (unsaved) when it never changed them."""
    found = CogsSettings.objects.filter(tenant=tenant).first()
    return found or CogsSettings(tenant=tenant)


def cogs_settings_update(
    *, tenant: Tenant, at_risk_floor_pct: Decimal | None = None,
    high_value_floor_pct: Decimal | None = None, anomaly_multiplier: Decimal | None = None,
    fixed_costs_per_month_usd: Decimal | None | object = _UNSET, time_zone: str | None = None,
) -> CogsSettings:
    """Change some settings; the rest keep their values. Raises DomainError naming a bad field."""
    current = cogs_settings_get(tenant=tenant)
    if at_risk_floor_pct is not None:
        current.at_risk_floor_pct = at_risk_floor_pct
    if high_value_floor_pct is not None:
        current.high_value_floor_pct = high_value_floor_pct
    if anomaly_multiplier is not None:
        if anomaly_multiplier < 1:
            raise DomainError("anomalyMultiplier must be at least 1.", field="anomalyMultiplier")
        current.anomaly_multiplier = anomaly_multiplier
    if fixed_costs_per_month_usd is not _UNSET:
        if fixed_costs_per_month_usd is not None and fixed_costs_per_month_usd < 0:
            raise DomainError("fixedCostsPerMonthUsd cannot be negative.",
                           field="fixedCostsPerMonthUsd")
        current.fixed_costs_per_month_usd = fixed_costs_per_month_usd
    if time_zone is not None:
        try:
            ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DomainError(f"Unknown time zone {time_zone!r}.", field="timeZone") from None
    if current.at_risk_floor_pct > current.high_value_floor_pct:
        raise DomainError("atRiskFloorPct cannot exceed highValueFloorPct.", field="atRiskFloorPct")
    current.save()
    if time_zone is not None:  # the tenant's own (every app's periods follow it)
        tenant.time_zone = current.tenant.time_zone = time_zone
        tenant.save(update_fields=["time_zone"])
    return current
