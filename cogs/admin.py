"""Admin for the tenants' COGS settings."""
from django.contrib import admin

from aforo.admin import TenantScopedAdmin
from cogs.models import CogsSettings


@admin.register(CogsSettings)
class CogsSettingsAdmin(TenantScopedAdmin):
    list_display = ("tenant", "at_risk_floor_pct", "high_value_floor_pct", "anomaly_multiplier",
                    "fixed_costs_per_month_usd", "time_zone", "updated_at")
