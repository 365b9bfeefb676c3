"""Intelligence URLs, mounted at /api/v1/intelligence/ (the forecast and what-if are mounted
beside the COGS reads, at /api/v1/analytics/cogs/, in aforo/urls.py)."""
from django.urls import path

from intelligence import api

urlpatterns = [
    path("signals", api.SignalList.as_view(), name="intelligence-signals"),
    path("signals/<int:signal_id>", api.SignalDetail.as_view(), name="intelligence-signal"),
    path("signals/<int:signal_id>/acknowledge", api.SignalAcknowledge.as_view(),
         name="intelligence-signal-acknowledge"),
    path("signals/<int:signal_id>/resolve", api.SignalResolve.as_view(),
         name="intelligence-signal-resolve"),
    path("settings", api.IntelligenceSettingsDetail.as_view(), name="intelligence-settings"),
]
