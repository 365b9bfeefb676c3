"""COGS & Margins URLs, mounted at /api/v1/analytics/cogs/."""
from django.urls import path

from cogs import api

urlpatterns = [
    path("dashboard", api.Dashboard.as_view(), name="cogs-dashboard"),
    path("dashboard/trends", api.Trends.as_view(), name="cogs-trends"),
    path("dashboard/cost-composition", api.CostComposition.as_view(),
         name="cogs-cost-composition"),
    path("dashboard/by-product", api.ByProduct.as_view(), name="cogs-by-product"),
    path("dashboard/by-customer", api.ByCustomer.as_view(), name="cogs-by-customer"),
    path("dashboard/by-model", api.ByModel.as_view(), name="cogs-by-model"),
    path("dashboard/token-analysis", api.TokenAnalysis.as_view(), name="cogs-token-analysis"),
    path("dashboard/pnl", api.Pnl.as_view(), name="cogs-pnl"),
    path("dashboard/transactions", api.Transactions.as_view(), name="cogs-transactions"),
    path("dashboard/anomalies", api.Anomalies.as_view(), name="cogs-anomalies"),
    path("settings", api.CogsSettingsDetail.as_view(), name="cogs-settings"),
]
