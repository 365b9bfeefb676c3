"""Entitlement and wallet routes under /api/v1/."""
from django.urls import path

from entitlements import api

urlpatterns = [
    path("entitlements", api.EntitlementList.as_view(), name="entitlements"),
    path("entitlements/<int:entitlement_id>", api.EntitlementDetail.as_view(),
         name="entitlement"),
    path("wallets", api.WalletList.as_view(), name="wallets"),
    path("wallets/<int:wallet_id>", api.WalletDetail.as_view(), name="wallet"),
    path("wallets/<int:wallet_id>/transactions", api.WalletTransactions.as_view(),
         name="wallet-transactions"),
]
