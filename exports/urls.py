"""Exports URLs, mounted at /api/v1/exports/."""
from django.urls import path

from exports import api

urlpatterns = [
    path("ledger", api.LedgerExport.as_view(), name="exports-ledger"),
    path("aggregates", api.AggregatesExport.as_view(), name="exports-aggregates"),
    path("schedules", api.ScheduleListCreate.as_view(), name="exports-schedules"),
    path("schedules/<int:schedule_id>", api.ScheduleDetail.as_view(), name="exports-schedule"),
    path("schedules/<int:schedule_id>/runs", api.ScheduleRuns.as_view(),
         name="exports-schedule-runs"),
    path("schedules/<int:schedule_id>/signing-secret", api.ScheduleSecret.as_view(),
         name="exports-schedule-secret"),
]
