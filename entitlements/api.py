"""Entitlements, wallets and their transactions under /api/v1/."""
from __future__ import annotations

from datetime import datetime, timezone

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.money import MoneyField, PctField
from aforo.pagination import PAGE_PARAMETERS, envelope, page_of, page_rendered, page_request, paged
from aforo.permissions import MANAGE_BUDGET_ROLES, ReadOrWrite
from entitlements import queries, services
from entitlements.models import FEATURES, Entitlement, Wallet


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CreditsPermission(ReadOrWrite):
    write_roles = MANAGE_BUDGET_ROLES


def CreditsField(**kwargs):  # noqa: N802 (a field factory, read as a field class)
    kwargs.setdefault("max_digits", 38)
    return MoneyField(places_out=9, **kwargs)


def _of_customer(request, model):
    """The tenant's rows of `model`, of one customer when `customerId` asks for it."""
    rows = model.objects.filter(tenant=request.tenant)
    customer = request.query_params.get("customerId")
    return rows.filter(customer_id=customer) if customer else rows


def _blank(values: dict) -> dict:
    return {k: ("" if v is None and k in ("product_id", "model", "downgrade_model") else v)
            for k, v in values.items()}


class EntitlementIn(serializers.Serializer):
    customerId = serializers.CharField(source="customer_id", max_length=200)
    feature = serializers.ChoiceField(choices=[(f, f) for f in FEATURES])
    productId = serializers.CharField(source="product_id", max_length=200, required=False,
                                      allow_blank=True, allow_null=True)
    model = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                  allow_null=True)
    period = serializers.ChoiceField(choices=Entitlement.Period.choices, required=False)
    limit = serializers.DecimalField(max_digits=38, decimal_places=9, coerce_to_string=False)
    warnAtPct = PctField(source="warn_at_pct", required=False)
    overage = serializers.ChoiceField(choices=Entitlement.Overage.choices, required=False)
    gracePct = PctField(source="grace_pct", required=False)
    downgradeModel = serializers.CharField(source="downgrade_model", max_length=200,
                                           required=False, allow_blank=True, allow_null=True,
                                           help_text="THROTTLE: the model to switch to.")


class EntitlementOut(serializers.Serializer):
    id = serializers.IntegerField()
    customerId = serializers.CharField()
    feature = serializers.CharField()
    productId = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    period = serializers.CharField()
    limit = CreditsField()
    warnAtPct = PctField()
    overage = serializers.CharField()
    gracePct = PctField()
    downgradeModel = serializers.CharField(allow_null=True)
    usage = CreditsField()
    remaining = CreditsField()
    overageUsage = CreditsField(help_text="Usage past the limit (counted under ALLOW).")
    usedPct = PctField(allow_null=True)
    periodStart = serializers.DateTimeField()
    periodEnd = serializers.DateTimeField(allow_null=True)
    projectedUsage = CreditsField()
    status = serializers.ChoiceField(choices=["OK", "WARNING", "EXCEEDED"])


class EntitlementList(APIView):
    permission_classes = [CreditsPermission]

    @extend_schema(**paged(EntitlementOut), operation_id="entitlements_list")
    def get(self, request):
        return page_rendered(request, _of_customer(request, Entitlement), lambda rows: (
            queries.entitlements_json(request.tenant, rows, _now())))

    @extend_schema(request=EntitlementIn, responses={201: EntitlementOut}, examples=[
        OpenApiExample("Monthly tokens", request_only=True, value={
            "customerId": "cust_acme", "feature": "TOKENS", "period": "MONTHLY",
            "limit": 10000, "warnAtPct": 80, "overage": "BLOCK"})])
    def post(self, request):
        data = EntitlementIn(data=request.data)
        data.is_valid(raise_exception=True)
        entitlement = services.entitlement_create(tenant=request.tenant,
                                                  **_blank(data.validated_data))
        return Response(queries.entitlements_json(request.tenant, [entitlement], _now())[0],
                        status=status.HTTP_201_CREATED)


class EntitlementDetail(APIView):
    permission_classes = [CreditsPermission]

    def _get(self, request, entitlement_id):
        return get_object_or_404(Entitlement, pk=entitlement_id, tenant=request.tenant)

    @extend_schema(responses=EntitlementOut)
    def get(self, request, entitlement_id: int):
        return Response(queries.entitlements_json(
            request.tenant, [self._get(request, entitlement_id)], _now())[0])

    @extend_schema(request=EntitlementIn, responses=EntitlementOut)
    def patch(self, request, entitlement_id: int):
        entitlement = self._get(request, entitlement_id)
        data = EntitlementIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        entitlement = services.entitlement_update(entitlement=entitlement,
                                                  **_blank(data.validated_data))
        return Response(queries.entitlements_json(request.tenant, [entitlement], _now())[0])

    @extend_schema(responses={204: None})
    def delete(self, request, entitlement_id: int):
        services.entitlement_delete(entitlement=self._get(request, entitlement_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class BurnRateIO(serializers.Serializer):
    feature = serializers.ChoiceField(choices=[(f, f) for f in FEATURES])
    productId = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                      allow_null=True)
    model = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                  allow_null=True)
    creditsPerUnit = CreditsField()


class RecurringTopUpIO(serializers.Serializer):
    trigger = serializers.ChoiceField(choices=["INTERVAL", "THRESHOLD"])
    interval = serializers.ChoiceField(choices=list(services.INTERVALS), required=False,
                                       allow_null=True)
    thresholdCredits = CreditsField(required=False, allow_null=True)
    method = serializers.ChoiceField(choices=["FIXED", "TARGET"], default="FIXED")
    credits = CreditsField(help_text="FIXED: credits added; TARGET: the balance topped up to.")


def _json_list(items: list[dict]) -> list[dict]:
    """Nested rules as stored (decimal strings, no nulls)."""
    return [{k: (str(v) if not isinstance(v, str) else v) for k, v in item.items()
             if v not in (None, "")} for item in items]


class WalletIn(serializers.Serializer):
    customerId = serializers.CharField(source="customer_id", max_length=200)
    name = serializers.CharField(max_length=200)
    creditValueUsd = MoneyField(source="credit_value_usd", max_digits=20)
    priority = serializers.IntegerField(required=False, help_text="1 is debited first.")
    burnRates = BurnRateIO(source="burn_rates", many=True, required=False, max_length=100)
    recurringTopUps = RecurringTopUpIO(source="recurring_top_ups", many=True, required=False,
                                       max_length=20)
    lowBalanceCredits = CreditsField(source="low_balance_credits", required=False,
                                     allow_null=True,
                                     help_text="A WALLET alert fires under this balance.")

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for key in ("burn_rates", "recurring_top_ups"):
            if key in values:
                values[key] = _json_list([dict(x) for x in values[key]])
        return values


class WalletOut(serializers.Serializer):
    id = serializers.IntegerField()
    customerId = serializers.CharField()
    name = serializers.CharField()
    creditValueUsd = MoneyField(places_out=9)
    priority = serializers.IntegerField()
    burnRates = BurnRateIO(many=True)
    recurringTopUps = RecurringTopUpIO(many=True)
    lowBalanceCredits = CreditsField(allow_null=True)
    balanceCredits = CreditsField()
    consumedCredits = CreditsField()
    grantedCredits = CreditsField()
    paidCredits = CreditsField()
    expiredCredits = CreditsField()
    lastEventAt = serializers.DateTimeField(allow_null=True)
    warnings = serializers.ListField(child=serializers.DictField(), required=False,
                                     help_text="Accepted but flagged (a burn rate for a model "
                                               "with no price).")


class WalletList(APIView):
    permission_classes = [CreditsPermission]

    @extend_schema(**paged(WalletOut), operation_id="wallets_list")
    def get(self, request):
        return page_rendered(request, _of_customer(request, Wallet), lambda rows: (
            queries.wallets_json(request.tenant, rows, _now())))

    @extend_schema(request=WalletIn, responses={201: WalletOut}, examples=[OpenApiExample(
        "Prepaid credits", request_only=True, value={
            "customerId": "cust_techstart", "name": "Prepaid", "creditValueUsd": 0.01,
            "burnRates": [{"feature": "TOKENS", "creditsPerUnit": 0.001}],
            "recurringTopUps": [{"trigger": "THRESHOLD", "thresholdCredits": 10,
                                 "method": "TARGET", "credits": 100}]})])
    def post(self, request):
        data = WalletIn(data=request.data)
        data.is_valid(raise_exception=True)
        wallet, warnings = services.wallet_create(tenant=request.tenant, **data.validated_data)
        body = queries.wallets_json(request.tenant, [wallet], _now())[0]
        return Response({**body, "warnings": warnings}, status=status.HTTP_201_CREATED)


class WalletDetail(APIView):
    permission_classes = [CreditsPermission]

    def _get(self, request, wallet_id):
        return get_object_or_404(Wallet, pk=wallet_id, tenant=request.tenant)

    @extend_schema(responses=WalletOut)
    def get(self, request, wallet_id: int):
        return Response(queries.wallets_json(request.tenant, [self._get(request, wallet_id)],
                                             _now())[0])

    @extend_schema(request=WalletIn, responses=WalletOut)
    def patch(self, request, wallet_id: int):
        wallet = self._get(request, wallet_id)
        data = WalletIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        wallet, warnings = services.wallet_update(wallet=wallet, **data.validated_data)
        body = queries.wallets_json(request.tenant, [wallet], _now())[0]
        return Response({**body, "warnings": warnings})

    @extend_schema(responses={204: None})
    def delete(self, request, wallet_id: int):
        services.wallet_delete(wallet=self._get(request, wallet_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class TopUpIn(serializers.Serializer):
    paidCredits = CreditsField(source="paid_credits", required=False, default=0)
    grantedCredits = CreditsField(source="granted_credits", required=False, default=0)
    expiresAt = serializers.DateTimeField(source="expires_at", required=False, allow_null=True,
                                          help_text="Granted credits stop counting at this "
                                                    "second; paid credits never expire.")
    idempotencyKey = serializers.CharField(source="idempotency_key", max_length=200)


class TransactionOut(serializers.Serializer):
    entryId = serializers.CharField()
    entryType = serializers.ChoiceField(choices=["TOPUP", "GRANT", "DEBIT", "EXPIRY"])
    credits = CreditsField(help_text="Signed: TOPUP and GRANT add, DEBIT and EXPIRY subtract.")
    eventId = serializers.CharField(allow_null=True, help_text="DEBIT: the event that burnt.")
    eventUrl = serializers.CharField(allow_null=True)
    occurredAt = serializers.DateTimeField()
    recordedAt = serializers.DateTimeField()


class TopUpOut(serializers.Serializer):
    id = serializers.IntegerField()
    paidCredits = CreditsField()
    grantedCredits = CreditsField()
    expiresAt = serializers.DateTimeField(allow_null=True)
    idempotencyKey = serializers.CharField()
    source = serializers.CharField()
    recordedAt = serializers.DateTimeField()
    created = serializers.BooleanField(help_text="false: the key was used before; nothing new.")


class WalletTransactions(APIView):
    permission_classes = [CreditsPermission]

    @extend_schema(responses=page_of(TransactionOut), parameters=PAGE_PARAMETERS,
                   operation_id="wallet_transactions_list")
    def get(self, request, wallet_id: int):
        wallet = get_object_or_404(Wallet, pk=wallet_id, tenant=request.tenant)
        page = page_request(request.query_params)
        total, rows = queries.wallet_transactions(wallet, offset=page.offset, limit=page.size)
        return Response(envelope(rows, page, total))

    @extend_schema(request=TopUpIn, responses={201: TopUpOut, 200: TopUpOut})
    def post(self, request, wallet_id: int):
        wallet = get_object_or_404(Wallet, pk=wallet_id, tenant=request.tenant)
        data = TopUpIn(data=request.data)
        data.is_valid(raise_exception=True)
        top_up, created = services.top_up_create(wallet=wallet, **data.validated_data)
        return Response(queries.top_up_json(top_up, created),
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)



