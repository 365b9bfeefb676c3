"""Catalog services: customers and products, registered on first sight or managed by hand."""
from __future__ import annotations

from aforo.errors import Conflict
from aforo.models import Customer, CustomerTier, Product, ProductType, Tenant


def customer_create(*, tenant: Tenant, external_id: str, name: str = "",
                    tier: CustomerTier | str = CustomerTier.FREE) -> Customer:
    return _entry_created(Customer(tenant=tenant, external_id=external_id, name=name,
                                   tier=CustomerTier(tier)), field="customer_id")


def customer_update(*, customer: Customer, name: str | None = None,
                    tier: CustomerTier | str | None = None) -> Customer:
    return _entry_updated(customer, name=name, kind_field="tier",
                          kind=None if tier is None else CustomerTier(tier))


def product_create(*, tenant: Tenant, external_id: str, name: str = "",
                   product_type: ProductType | str = ProductType.OTHER) -> Product:
    return _entry_created(Product(tenant=tenant, external_id=external_id, name=name,
                                  product_type=ProductType(product_type)), field="product_id")


def product_update(*, product: Product, name: str | None = None,
                   product_type: ProductType | str | None = None) -> Product:
    return _entry_updated(product, name=name, kind_field="product_type",
                          kind=None if product_type is None else ProductType(product_type))


def _entry_created(entry, *, field: str):
    """A new customer or product saved: its external id free in the tenant (Conflict naming
    `field` otherwise), its values valid."""
    if type(entry).objects.filter(tenant=entry.tenant, external_id=entry.external_id).exists():
        raise Conflict(f"“{entry.external_id}” exists already.", field=field)
    entry.full_clean(exclude=["tenant"], validate_unique=False)
    entry.save()
    return entry


def _entry_updated(entry, *, name: str | None, kind_field: str, kind):
    """A customer's or product's name and its tier or type, each where given."""
    if name is not None:
        entry.name = name
    if kind is not None:
        setattr(entry, kind_field, kind)
    entry.save(update_fields=["name", kind_field])
    return entry


# (tenant pk, model, external id) this process has seen registered: ingest asks the database
# only about ids it has not met, so a steady stream of known customers costs no query.
_registered: set[tuple[int, str, str]] = set()
_REGISTERED_MAX = 500_000


def catalog_register(*, tenant: Tenant, customer_ids: set[str], products: dict[str, str]) -> None:
    """Create the customers and products not seen before (product id -> product type).

    Safe under concurrency: a row another request created first is kept (ignore_conflicts).
    """
    for model, wanted, make in (
        (Customer, {c for c in customer_ids if c},
         lambda c: Customer(tenant=tenant, external_id=c, name=c)),
        (Product, {p for p in products if p},
         lambda p: Product(tenant=tenant, external_id=p, name=p,
                           product_type=products[p] if products[p] in ProductType.values
                           else ProductType.OTHER)),
    ):
        unseen = {i for i in wanted if (tenant.pk, model.__name__, i) not in _registered}
        if not unseen:
            continue
        known = set(model.objects.filter(tenant=tenant, external_id__in=unseen)
                    .values_list("external_id", flat=True))
        if unseen - known:
            model.objects.bulk_create([make(i) for i in unseen - known], ignore_conflicts=True)
        if len(_registered) > _REGISTERED_MAX:
            _registered.clear()
        _registered.update((tenant.pk, model.__name__, i) for i in unseen)
