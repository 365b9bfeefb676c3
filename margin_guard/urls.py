"""Margin Guard routes under /api/v1/margin-guard/."""
from django.urls import path

from margin_guard import api

urlpatterns = [
    path("policies", api.PolicyList.as_view(), name="guard-policies"),
    path("policies/preview", api.PolicyPreview.as_view(), name="guard-policy-preview"),
    path("policies/<int:policy_id>", api.PolicyDetail.as_view(), name="guard-policy"),
    path("policies/<int:policy_id>/signing-secret", api.PolicySecretRotate.as_view(),
         name="guard-policy-signing-secret"),
    path("states", api.StateList.as_view(), name="guard-states"),
    path("actions", api.ActionList.as_view(), name="guard-actions"),
    path("decide", api.decide_endpoint, name="guard-decide"),
    path("overrides", api.Override.as_view(), name="guard-override"),
    path("slack/interactions", api.SlackInteractions.as_view(), name="guard-slack-interactions"),
    path("impact", api.Impact.as_view(), name="guard-impact"),
    path("settings", api.GuardSettingsView.as_view(), name="guard-settings"),
]
