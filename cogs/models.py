"""Per-tenant settings behind the COGS & Margins definitions (tags, anomalies, break-even)."""
from __future__ import annotations

from decimal import Decimal

from django.db import models

from aforo.models import Tenant


class CogsSettings(models.Model):
    """One row per tenant; a tenant without one reads the defaults."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="cogs_settings")
    at_risk_floor_pct = models.DecimalField(
        max_digits=7, decimal_places=2, default=Decimal("20"),
        help_text="A customer whose margin % is below this is AT_RISK.")
    high_value_floor_pct = models.DecimalField(
        max_digits=7, decimal_places=2, default=Decimal("60"),
        help_text="A customer whose margin % is at or above this is HIGH_VALUE.")
    anomaly_multiplier = models.DecimalField(
        max_digits=7, decimal_places=2, default=Decimal("3"),
        help_text="An event costing at least this many times its product+model average "
                  "is an anomaly.")
    fixed_costs_per_month_usd = models.DecimalField(
        max_digits=18, decimal_places=2, null=True, blank=True,
        help_text="Fixed costs a month; empty: no break-even point.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "COGS settings"
        verbose_name_plural = "COGS settings"

    def __str__(self) -> str:
        return f"COGS settings of {self.tenant}"

    @property
    def time_zone(self) -> str:
        """The tenant's time zone (kept on the tenant: every app's periods follow it)."""
        return self.tenant.time_zone
