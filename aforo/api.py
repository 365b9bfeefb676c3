"""Catalog API (customers and products of the caller's tenant) and the tenant's API tokens."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo import catalog, tenancy
from aforo.models import ApiToken, Customer, CustomerTier, Product, ProductType, Role
from aforo.openapi import ERROR
from aforo.pagination import paged, paged_response
from aforo.permissions import CanManageTokens, CatalogPermission


class CustomerOut(serializers.Serializer):
    customerId = serializers.CharField(source="external_id")
    name = serializers.CharField()
    tier = serializers.ChoiceField(choices=CustomerTier.choices)


class ProductOut(serializers.Serializer):
    productId = serializers.CharField(source="external_id")
    name = serializers.CharField()
    productType = serializers.ChoiceField(source="product_type", choices=ProductType.choices)


class CustomerListCreate(APIView):
    permission_classes = [CatalogPermission]

    class CustomerCreate(serializers.Serializer):
        customerId = serializers.CharField(max_length=200)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        tier = serializers.ChoiceField(choices=CustomerTier.choices, default=CustomerTier.FREE)

    @extend_schema(**paged(CustomerOut), operation_id="customers_list")
    def get(self, request):
        return paged_response(request, Customer.objects.filter(tenant=request.tenant),
                              CustomerOut)

    @extend_schema(request=CustomerCreate, responses={201: CustomerOut, 409: ERROR})
    def post(self, request):
        data = self.CustomerCreate(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        customer = catalog.customer_create(tenant=request.tenant, external_id=values["customerId"],
                                           name=values["name"], tier=values["tier"])
        return Response(CustomerOut(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetail(APIView):
    permission_classes = [CatalogPermission]

    class CustomerUpdate(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        tier = serializers.ChoiceField(choices=CustomerTier.choices, required=False)

    @extend_schema(responses=CustomerOut)
    def get(self, request, customer_id: str):
        customer = get_object_or_404(Customer, tenant=request.tenant, external_id=customer_id)
        return Response(CustomerOut(customer).data)

    @extend_schema(request=CustomerUpdate, responses=CustomerOut)
    def patch(self, request, customer_id: str):
        customer = get_object_or_404(Customer, tenant=request.tenant, external_id=customer_id)
        data = self.CustomerUpdate(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        customer = catalog.customer_update(customer=customer, **data.validated_data)
        return Response(CustomerOut(customer).data)


class ProductListCreate(APIView):
    permission_classes = [CatalogPermission]

    class ProductCreate(serializers.Serializer):
        productId = serializers.CharField(max_length=200)
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        productType = serializers.ChoiceField(choices=ProductType.choices,
                                              default=ProductType.OTHER)

    @extend_schema(**paged(ProductOut), operation_id="products_list")
    def get(self, request):
        return paged_response(request, Product.objects.filter(tenant=request.tenant),
                              ProductOut)

    @extend_schema(request=ProductCreate, responses={201: ProductOut, 409: ERROR})
    def post(self, request):
        data = self.ProductCreate(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        product = catalog.product_create(tenant=request.tenant, external_id=values["productId"],
                                         name=values["name"], product_type=values["productType"])
        return Response(ProductOut(product).data, status=status.HTTP_201_CREATED)


class ProductDetail(APIView):
    permission_classes = [CatalogPermission]

    class ProductUpdate(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        productType = serializers.ChoiceField(choices=ProductType.choices, required=False)

    @extend_schema(responses=ProductOut)
    def get(self, request, product_id: str):
        product = get_object_or_404(Product, tenant=request.tenant, external_id=product_id)
        return Response(ProductOut(product).data)

    @extend_schema(request=ProductUpdate, responses=ProductOut)
    def patch(self, request, product_id: str):
        product = get_object_or_404(Product, tenant=request.tenant, external_id=product_id)
        data = self.ProductUpdate(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        product = catalog.product_update(product=product, name=values.get("name"),
                                         product_type=values.get("productType"))
        return Response(ProductOut(product).data)


# --- API tokens: /api/v1/tokens --------------------------------------------------------------

class TokenOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    prefix = serializers.CharField(help_text="The token's first characters, to recognise it.")
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at", allow_null=True)
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)


class TokenIssued(TokenOut):
    token = serializers.CharField(help_text="The secret: shown only in this answer.")


def _tokens(request):
    return ApiToken.objects.filter(tenant=request.tenant, revoked_at__isnull=True) \
        .order_by("-created_at", "-id")


class TokenListCreate(APIView):
    permission_classes = [CanManageTokens]

    class TokenCreate(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                     default="")
        role = serializers.ChoiceField(choices=Role.choices)
        expiresAt = serializers.DateTimeField(required=False, allow_null=True, default=None)

    @extend_schema(**paged(TokenOut), operation_id="tokens_list")
    def get(self, request):
        return paged_response(request, _tokens(request), TokenOut)

    @extend_schema(request=TokenCreate, responses={201: TokenIssued})
    def post(self, request):
        data = self.TokenCreate(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        issued = tenancy.api_token_issue(
            tenant=request.tenant, role=values["role"], issuer_role=request.role,
            issuer_user=request.user, name=values["name"], expires_at=values["expiresAt"])
        return Response({**TokenOut(issued.token).data, "token": issued.raw},
                        status=status.HTTP_201_CREATED)


class TokenDetail(APIView):
    permission_classes = [CanManageTokens]

    @extend_schema(responses={204: None})
    def delete(self, request, token_id: int):
        tenancy.api_token_revoke(token=get_object_or_404(_tokens(request), pk=token_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
