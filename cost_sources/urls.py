"""Cost sources URLs, under /api/v1/cost-sources (the reconciliation is mounted beside the
COGS reads, at /api/v1/analytics/cogs/reconciliation, in aforo/urls.py)."""
from django.urls import path

from cost_sources import api

urlpatterns = [
    path("cost-sources", api.CostSourceListCreate.as_view(), name="cost-sources"),
    path("cost-sources/settings", api.ReconciliationSettingsDetail.as_view(),
         name="cost-sources-settings"),
    path("cost-sources/allocations", api.AllocationListCreate.as_view(),
         name="cost-allocations"),
    path("cost-sources/allocations/<int:allocation_id>/reverse",
         api.AllocationReverse.as_view(), name="cost-allocation-reverse"),
    path("cost-sources/<int:source_id>", api.CostSourceDetail.as_view(), name="cost-source"),
    path("cost-sources/<int:source_id>/imports", api.CostImportListCreate.as_view(),
         name="cost-source-imports"),
    path("cost-sources/<int:source_id>/imports/<int:import_id>", api.CostImportDetail.as_view(),
         name="cost-source-import"),
]
