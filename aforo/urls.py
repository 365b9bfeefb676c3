"""URL map: the REST API under /api/v1/, the console under /console/, admin, health, docs."""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from aforo import api, console, health
from billing import views as billing_views
from budgets import views as budget_views
from cogs import session_views, usage_views
from cogs import views as cogs_views
from cost_sources import api as cost_sources_api
from cost_sources import views as cost_sources_views
from entitlements import views as entitlement_views
from exports import views as export_views
from ingestion import api as ingestion_api
from intelligence import api as intelligence_api
from intelligence import views as intelligence_views
from margin_guard import views as guard_views

api_v1 = [
    path("events", ingestion_api.events_endpoint, name="events"),
    path("otlp/settings", ingestion_api.OtlpSettingsDetail.as_view(), name="otlp-settings"),
    path("rate-cards/", include("ingestion.urls")),
    path("cogs/", include("budgets.urls")),
    path("margin-guard/", include("margin_guard.urls")),
    path("", include("entitlements.urls")),
    path("customers", api.CustomerListCreate.as_view(), name="customers"),
    path("customers/<str:customer_id>", api.CustomerDetail.as_view(), name="customer"),
    path("products", api.ProductListCreate.as_view(), name="products"),
    path("products/<str:product_id>", api.ProductDetail.as_view(), name="product"),
    path("tokens", api.TokenListCreate.as_view(), name="tokens"),
    path("tokens/<int:token_id>", api.TokenDetail.as_view(), name="token"),
    path("analytics/cogs/forecast", intelligence_api.Forecast.as_view(), name="cogs-forecast"),
    path("analytics/cogs/what-if", intelligence_api.WhatIf.as_view(), name="cogs-what-if"),
    path("analytics/cogs/reconciliation", cost_sources_api.Reconciliation.as_view(),
         name="cogs-reconciliation"),
    path("analytics/cogs/", include("cogs.urls")),
    path("", include("cost_sources.urls")),
    path("analytics/usage/", include("cogs.usage_urls")),
    path("analytics/agents/", include("cogs.agents_urls")),
    path("intelligence/", include("intelligence.urls")),
    path("billing/", include("billing.urls")),
    path("exports/", include("exports.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    path("healthz", health.healthz, name="healthz"),
    path("v1/traces", ingestion_api.traces_endpoint, name="otlp-traces"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[],
                                                   authentication_classes=[]), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[],
                                                     authentication_classes=[]), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", permission_classes=[],
                                                    authentication_classes=[]), name="redoc"),
    path("console/login/", console.LoginView.as_view(), name="login"),
    path("console/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("console/tenant/", console.switch_tenant, name="console-tenant"),
    path("console/cogs/pnl/", cogs_views.pnl, name="console-cogs-pnl"),
    path("console/cogs/costs/", cogs_views.breakdown, name="console-cogs-breakdown"),
    path("console/cogs/transactions/", cogs_views.transactions,
         name="console-cogs-transactions"),
    path("console/cogs/usage/", usage_views.usage, name="console-cogs-usage"),
    # <path:>: session ids are the caller's own and may hold a slash
    path("console/cogs/sessions/<path:session_id>/", session_views.session_page,
         name="console-cogs-session"),
    path("console/cogs/budgets/", budget_views.budgets_tab, name="console-cogs-budgets"),
    path("console/cogs/signals/", intelligence_views.signals, name="console-cogs-signals"),
    path("console/cogs/signals/<int:signal_id>/<str:action>/",
         intelligence_views.signal_transition, name="console-signal-transition"),
    path("console/cogs/forecast/", intelligence_views.forecast, name="console-cogs-forecast"),
    path("console/cogs/entitlements/", entitlement_views.entitlements,
         name="console-entitlements"),
    path("console/cogs/entitlements/new/", entitlement_views.entitlement_save,
         name="console-entitlements-save"),
    path("console/cogs/entitlements/wallets/new/", entitlement_views.wallet_save,
         name="console-entitlements-wallet-save"),
    path("console/cogs/entitlements/wallets/<int:wallet_id>/top-up/",
         entitlement_views.top_up_save, name="console-entitlements-top-up"),
    path("console/cogs/cost-sources/", cost_sources_views.cost_sources,
         name="console-cogs-cost-sources"),
    path("console/cogs/cost-sources/new/", cost_sources_views.source_new,
         name="console-cost-source-new"),
    path("console/cogs/cost-sources/<int:source_id>/import/", cost_sources_views.source_import,
         name="console-cost-source-import"),
    path("console/cogs/cost-sources/allocations/new/", cost_sources_views.allocation_new,
         name="console-allocation-new"),
    path("console/cogs/cost-sources/allocations/<int:allocation_id>/reverse/",
         cost_sources_views.allocation_reverse, name="console-allocation-reverse"),
    path("console/cogs/exports/", export_views.exports_tab, name="console-exports"),
    path("console/cogs/exports/new/", export_views.schedule_save, name="console-export-save"),
    path("console/cogs/exports/<int:schedule_id>/<str:action>/", export_views.schedule_action,
         name="console-export-action"),
    path("console/cogs/exports/download/<str:what>/", export_views.download,
         name="console-export-download"),
    path("console/margin-guard/", guard_views.guard_page, name="console-margin-guard"),
    path("console/margin-guard/override/", guard_views.override, name="console-guard-override"),
    path("console/margin-guard/settings", guard_views.settings_save,
         name="console-guard-settings"),
    path("console/margin-guard/policies/new", guard_views.policy_form,
         name="console-guard-policy-new"),
    path("console/margin-guard/policies/<int:policy_id>", guard_views.policy_form,
         name="console-guard-policy"),
    path("console/margin-guard/policies/<int:policy_id>/mode", guard_views.policy_mode,
         name="console-guard-policy-mode"),
    path("console/margin-guard/policies/<int:policy_id>/delete", guard_views.policy_delete,
         name="console-guard-policy-delete"),
    path("console/cogs/budgets/new/", budget_views.budget_save, name="console-budget-save"),
    path("console/cogs/budgets/<int:budget_id>/delete/", budget_views.budget_delete,
         name="console-budget-delete"),
    path("console/cogs/rules/save/", budget_views.rule_save, name="console-rule-save"),
    path("console/cogs/rules/<int:rule_id>/delete/", budget_views.rule_delete,
         name="console-rule-delete"),
    path("console/cogs/alerts/<int:alert_id>/<str:action>/", budget_views.alert_transition,
         name="console-alert-transition"),
    path("console/billing/plans/", billing_views.plans_page, name="console-billing-plans"),
    path("console/billing/new-plan/", billing_views.plan_new, name="console-billing-plan-new"),
    path("console/billing/plans/<str:code>/", billing_views.plan_page,
         name="console-billing-plan"),
    path("console/billing/plans/<str:code>/delete/", billing_views.plan_delete,
         name="console-billing-plan-delete"),
    path("console/billing/customers/", billing_views.customers_page,
         name="console-billing-customers"),
    path("console/billing/new-customer/", billing_views.customer_new,
         name="console-billing-customer-new"),
    # <path:>: customer ids are the caller's own and may hold a slash
    path("console/billing/customers/<path:customer_id>/", billing_views.customer_page,
         name="console-billing-customer"),
    path("console/", cogs_views.overview, name="console-home"),
]

handler404 = "aforo.views.not_found"
handler500 = "aforo.views.server_error"
