"""Agent analytics URLs, mounted at /api/v1/analytics/agents/."""
from django.urls import path

from cogs import agents_api

urlpatterns = [
    path("tools", agents_api.Tools.as_view(), name="agents-tools"),
    path("sessions", agents_api.Sessions.as_view(), name="agents-sessions"),
    # <path:>: session ids are the caller's own and may hold a slash
    path("sessions/<path:session_id>", agents_api.SessionDetail.as_view(),
         name="agents-session"),
    path("by-agent", agents_api.ByAgent.as_view(), name="agents-by-agent"),
]
