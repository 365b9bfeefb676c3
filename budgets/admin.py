"""Admin for budgets, rules and alerts (tenant-aware lists), with each alert's deliveries."""
from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline

from budgets.models import Alert, AlertRule, CostBudget
from notifications.admin import DestinationInline
from notifications.models import Delivery


@admin.register(CostBudget)
class CostBudgetAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "period", "cap_usd", "warning_threshold_pct",
                    "product_id", "customer_id")
    list_filter = ("tenant", "period")
    inlines = [DestinationInline]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "metric", "comparison", "threshold", "window", "channel",
                    "enabled")
    list_filter = ("tenant", "metric", "enabled")
    inlines = [DestinationInline]


class DeliveryInline(GenericTabularInline):
    model = Delivery
    ct_field, ct_fk_field = "subject_type", "subject_id"
    extra = 0
    readonly_fields = ("channel", "destination", "state", "attempts", "next_attempt_at",
                       "last_error", "delivered_at")
    exclude = ("signing_secret",)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("title", "tenant", "state", "metric", "value", "threshold", "fired_at")
    list_filter = ("tenant", "state")
    inlines = [DeliveryInline]
