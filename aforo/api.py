"""Catalog API (customers and products of the caller's tenant) and the tenant's API tokens."""
from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
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


class CustomerCreate(serializers.Serializer):
    customerId = serializers.CharField(source="external_id", max_length=200)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    tier = serializers.ChoiceField(choices=CustomerTier.choices, default=CustomerTier.FREE)


class CustomerUpdate(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tier = serializers.ChoiceField(choices=CustomerTier.choices, required=False)


class ProductCreate(serializers.Serializer):
    productId = serializers.CharField(source="external_id", max_length=200)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    productType = serializers.ChoiceField(source="product_type", choices=ProductType.choices,
                                          default=ProductType.OTHER)


class ProductUpdate(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    productType = serializers.ChoiceField(source="product_type", choices=ProductType.choices,
                                          required=False)


# One catalog resource's views (customers, products). Comments, not docstrings: a docstring
# would become every operation's description in the schema.

class _CatalogList(APIView):
    # The list and create: `model` rows of the caller's tenant shown as `out`, created from
    # `create_in`'s validated values by `create` (a catalog service).

    permission_classes = [CatalogPermission]
    model: type
    out: type[serializers.Serializer]
    create_in: type[serializers.Serializer]
    create = None  # catalog.*_create

    def get(self, request):
        return paged_response(request, self.model.objects.filter(tenant=request.tenant),
                              self.out)

    def post(self, request):
        data = self.create_in(data=request.data)
        data.is_valid(raise_exception=True)
        created = type(self).create(tenant=request.tenant, **data.validated_data)
        return Response(self.out(created).data, status=status.HTTP_201_CREATED)


class _CatalogDetail(APIView):
    # One row by its id (the path's `key`): shown as `out`, changed from `update_in`'s
    # validated values by `update` (a catalog service).

    permission_classes = [CatalogPermission]
    model: type
    key: str
    out: type[serializers.Serializer]
    update_in: type[serializers.Serializer]
    update = None  # catalog.*_update

    def _get(self, request, kwargs):
        return get_object_or_404(self.model, tenant=request.tenant, external_id=kwargs[self.key])

    def get(self, request, **kwargs):
        return Response(self.out(self._get(request, kwargs)).data)

    def patch(self, request, **kwargs):
        found = self._get(request, kwargs)
        data = self.update_in(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changed = type(self).update(found, **data.validated_data)
        return Response(self.out(changed).data)


def _catalog_views(model, key: str, out, create_in, update_in, create, update, list_id: str):
    """The list/create and detail views of one catalog resource, with their schema."""
    listing = type(f"{model.__name__}ListCreate", (_CatalogList,), {
        "model": model, "out": out, "create_in": create_in, "create": staticmethod(create)})
    detail = type(f"{model.__name__}Detail", (_CatalogDetail,), {
        "model": model, "key": key, "out": out, "update_in": update_in,
        "update": staticmethod(update)})
    return (extend_schema_view(
                get=extend_schema(**paged(out), operation_id=list_id),
                post=extend_schema(request=create_in, responses={201: out, 409: ERROR}))(listing),
            extend_schema_view(get=extend_schema(responses=out),
                               patch=extend_schema(request=update_in, responses=out))(detail))


CustomerListCreate, CustomerDetail = _catalog_views(
    Customer, "customer_id", CustomerOut, CustomerCreate, CustomerUpdate,
    catalog.customer_create,
    lambda customer, **values: catalog.customer_update(customer=customer, **values),
    "customers_list")
ProductListCreate, ProductDetail = _catalog_views(
    Product, "product_id", ProductOut, ProductCreate, ProductUpdate, catalog.product_create,
    lambda product, **values: catalog.product_update(product=product, **values),
    "products_list")


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
