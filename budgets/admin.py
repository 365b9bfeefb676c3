"""Admin for budgets, rules, alerts and deliveries (tenant-aware lists)."""
from django.contrib import admin

from budgets.models import Alert, AlertRule, CostBudget, Delivery, DeliveryAttempt


@admin.register(CostBudget)
class CostBudgetAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "period", "cap_usd", "warning_threshold_pct",
                    "product_id", "customer_id")
    list_filter = ("tenant", "period")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "metric", "comparison", "threshold", "window", "channel",
                    "enabled")
    list_filter = ("tenant", "metric", "channel", "enabled")


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    readonly_fields = ("channel", "destination", "state", "attempts", "next_attempt_at",
                       "last_error", "delivered_at")
    exclude = ("signing_secret",)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("title", "tenant", "state", "metric", "value", "threshold", "fired_at")
    list_filter = ("tenant", "state")
    inlines = [DeliveryInline]


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(admin.ModelAdmin):
    list_display = ("delivery", "attempted_at", "ok", "detail")
    list_filter = ("ok",)
