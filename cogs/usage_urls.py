"""Usage analytics URLs, mounted at /api/v1/analytics/usage/."""
from django.urls import path

from cogs import usage_api

urlpatterns = [
    path("by-billable-unit", usage_api.ByBillableUnit.as_view(), name="usage-by-billable-unit"),
    path("by-customer", usage_api.ByCustomer.as_view(), name="usage-by-customer"),
    path("by-product-type", usage_api.ByProductType.as_view(), name="usage-by-product-type"),
]
