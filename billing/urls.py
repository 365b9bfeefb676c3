"""Billing routes under /api/v1/billing/."""
from django.urls import path

from billing import api, plans_api

urlpatterns = [
    path("invoices", api.InvoiceListImport.as_view(), name="billing-invoices"),
    path("invoices/stripe", api.StripeInvoiceImport.as_view(), name="billing-invoices-stripe"),
    path("invoices/<str:invoice_id>", api.InvoiceDetail.as_view(), name="billing-invoice"),
    path("invoices/<str:invoice_id>/finalize", api.InvoiceFinalize.as_view(),
         name="billing-invoice-finalize"),
    path("invoices/<str:invoice_id>/void", api.InvoiceVoid.as_view(),
         name="billing-invoice-void"),
    path("attribution-runs", api.AttributionRunListCreate.as_view(),
         name="billing-attribution-runs"),
    path("attribution-runs/<uuid:run_id>", api.AttributionRunDetail.as_view(),
         name="billing-attribution-run"),
    path("plans", plans_api.PlanListCreate.as_view(), name="billing-plans"),
    path("plans/<str:code>", plans_api.PlanDetail.as_view(), name="billing-plan"),
    path("subscriptions", plans_api.SubscriptionListCreate.as_view(),
         name="billing-subscriptions"),
    path("subscriptions/<int:subscription_id>", plans_api.SubscriptionDetail.as_view(),
         name="billing-subscription"),
    path("subscriptions/<int:subscription_id>/end", plans_api.SubscriptionEnd.as_view(),
         name="billing-subscription-end"),
    path("subscriptions/<int:subscription_id>/change-plan",
         plans_api.SubscriptionChangePlan.as_view(), name="billing-subscription-change-plan"),
]
