"""Budget and alert routes under /api/v1/cogs/."""
from django.urls import path

from budgets import api

urlpatterns = [
    path("budgets", api.BudgetList.as_view(), name="budgets"),
    path("budgets/<int:budget_id>", api.BudgetDetail.as_view(), name="budget"),
    path("alert-rules", api.AlertRuleList.as_view(), name="alert-rules"),
    path("budgets/<int:budget_id>/signing-secret", api.BudgetSecretRotate.as_view(),
         name="budget-signing-secret"),
    path("alert-rules/<int:rule_id>", api.AlertRuleDetail.as_view(), name="alert-rule"),
    path("alert-rules/<int:rule_id>/signing-secret", api.AlertRuleSecretRotate.as_view(),
         name="alert-rule-signing-secret"),
    path("alert-history", api.AlertHistory.as_view(), name="alert-history"),
    path("alert-history/<int:alert_id>", api.AlertDetail.as_view(), name="alert"),
    path("alert-history/<int:alert_id>/acknowledge", api.AlertAcknowledge.as_view(),
         name="alert-acknowledge"),
    path("alert-history/<int:alert_id>/resolve", api.AlertResolve.as_view(),
         name="alert-resolve"),
]
