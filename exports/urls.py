"""Exports URLs, mounted at /api/v1/exports/."""
from django.urls import path

from exports import api

urlpatterns = [
    path("ledger", api.LedgerExport.as_view(), name="exports-ledger"),
    path("aggregates", api.AggregatesExport.as_view(), name="exports-aggregates"),
]
