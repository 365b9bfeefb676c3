"""Catalog services: customers and products, registered on first sight or managed by hand."""
from __future__ import annotations

from django.db import IntegrityError, transaction

from aforo.models import Customer, CustomerTier, Product, ProductType, Tenant


def customer_create(*, tenant: Tenant, external_id: str, name: str = "",
                    tier: CustomerTier | str = CustomerTier.FREE) -> Customer:
    customer = Customer(tenant=tenant, external_id=external_id, name=name, tier=CustomerTier(tier))
    customer.full_clean(exclude=["tenant"], validate_unique=False)
    customer.save()
    return customer


def customer_update(*, customer: Customer, name: str | None = None,
                    tier: CustomerTier | str | None = None) -> Customer:
    if name is not None:
        customer.name = name
    if tier is not None:
        customer.tier = CustomerTier(tier)
    customer.save(update_fields=["name", "tier"])
    return customer


def product_create(*, tenant: Tenant, external_id: str, name: str = "",
                   product_type: ProductType | str = ProductType.OTHER) -> Product:
    product = Product(tenant=tenant, external_id=external_id, name=name,
                      product_type=ProductType(product_type))
    product.full_clean(exclude=["tenant"], validate_unique=False)
    product.save()
    return product


def product_update(*, product: Product, name: str | None = None,
                   product_type: ProductType | str | None = None) -> Product:
    if name is not None:
        product.name = name
    if product_type is not None:
        product.product_type = ProductType(product_type)
    product.save(update_fields=["name", "product_type"])
    return product


def catalog_register(*, tenant: Tenant, customer_ids: set[str], products: dict[str, str]) -> None:
    """Create the customers and products not seen before (product id -> product type).

    Safe under concurrency: a row another request created first is simply kept.
    """
    known_customers = set(
        Customer.objects.filter(tenant=tenant, external_id__in=customer_ids)
        .values_list("external_id", flat=True)
    )
    known_products = set(
        Product.objects.filter(tenant=tenant, external_id__in=products.keys())
        .values_list("external_id", flat=True)
    )
    new_customers = [Customer(tenant=tenant, external_id=c, name=c)
                     for c in customer_ids - known_customers if c]
    new_products = [
        Product(tenant=tenant, external_id=p, name=p,
                product_type=products[p] if products[p] in ProductType.values
                else ProductType.OTHER)
        for p in products.keys() - known_products if p
    ]
    for model, rows in ((Customer, new_customers), (Product, new_products)):
        if rows:
            try:
                with transaction.atomic():
                    model.objects.bulk_create(rows, ignore_conflicts=True)
            except IntegrityError:  # pragma: no cover - ignore_conflicts covers both databases
                pass
