"""Operators' view of cost sources and their import runs (runs are read-only: they are what
happened)."""
from django.contrib import admin

from cost_sources.models import CostImport, CostSource, ReconciliationSettings


@admin.register(CostSource)
class CostSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "tenant", "kind", "mode", "created_at")
    list_filter = ("kind", "mode")
    search_fields = ("name", "tenant__slug")


@admin.register(CostImport)
class CostImportAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "status", "rows_read", "rows_imported", "rows_skipped",
                    "lines_changed", "total_usd", "started_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = [field.name for field in CostImport._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


admin.site.register(ReconciliationSettings)
