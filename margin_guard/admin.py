"""Admin for guard policies (operators set PLATFORM ones here), states and the audit trail."""
from django.contrib import admin

from margin_guard.models import GuardAction, GuardPolicy, GuardState


@admin.register(GuardPolicy)
class GuardPolicyAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "scope", "mode", "alert_below_pct", "throttle_below_pct",
                    "block_below_pct", "window")
    list_filter = ("tenant", "scope", "mode")


@admin.register(GuardState)
class GuardStateAdmin(admin.ModelAdmin):
    list_display = ("tenant", "customer_id", "product_id", "level", "mode", "margin_pct",
                    "evaluated_at", "override_until")
    list_filter = ("tenant", "level", "mode")


@admin.register(GuardAction)
class GuardActionAdmin(admin.ModelAdmin):
    list_display = ("at", "tenant", "customer_id", "product_id", "from_level", "to_level",
                    "mode", "margin_pct", "actor")
    list_filter = ("tenant", "mode", "to_level")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the audit trail is append-only
