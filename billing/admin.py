"""Admin for plans, subscriptions, invoices and attribution runs."""
from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from aforo.errors import DomainError
from billing.models import (
    AttributionRun,
    Invoice,
    InvoiceLine,
    PriceComponent,
    PriceTier,
    RatePlan,
    Subscription,
)
from billing.rating import plans_changed
from billing.services import subscription_term_check


class PlanCacheAdmin(admin.ModelAdmin):
    """Edits here change what ingest rates; tell the in-memory plan books to reload."""

    @staticmethod
    def tenant_of(obj):
        return obj.plan.tenant if isinstance(obj, PriceComponent) else obj.tenant

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        plans_changed(self.tenant_of(form.instance))

    def delete_model(self, request, obj):
        tenant = self.tenant_of(obj)
        super().delete_model(request, obj)
        plans_changed(tenant)


class PriceComponentInline(admin.TabularInline):
    model = PriceComponent
    extra = 0


@admin.register(RatePlan)
class RatePlanAdmin(PlanCacheAdmin):
    list_display = ("code", "name", "tenant", "created_at")
    list_filter = ("tenant",)
    search_fields = ("code", "name")
    inlines = [PriceComponentInline]


class PriceTierInline(admin.TabularInline):
    model = PriceTier
    extra = 0


@admin.register(PriceComponent)
class PriceComponentAdmin(PlanCacheAdmin):
    list_display = ("plan", "kind", "product_id", "unit_price")
    list_filter = ("kind",)
    inlines = [PriceTierInline]


class SubscriptionForm(forms.ModelForm):
    """Refuses what the API refuses: an end before the start, two plans at once."""

    class Meta:
        model = Subscription
        fields = "__all__"

    def clean(self):
        values = super().clean()
        customer, starts_at = values.get("customer"), values.get("starts_at")
        if customer is not None and starts_at is not None:
            try:
                subscription_term_check(customer=customer, starts_at=starts_at,
                                        ends_at=values.get("ends_at"),
                                        excluding=self.instance.pk)
            except DomainError as exc:
                raise ValidationError(str(exc.message)) from None
        return values


@admin.register(Subscription)
class SubscriptionAdmin(PlanCacheAdmin):
    form = SubscriptionForm
    list_display = ("customer", "plan", "starts_at", "ends_at", "tenant")
    list_filter = ("tenant", "plan")


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("invoice_id", "version", "customer_id", "period_start", "period_end",
                    "status", "source", "total_usd", "tenant")
    list_filter = ("status", "source", "tenant")
    search_fields = ("invoice_id", "customer_id")
    inlines = [InvoiceLineInline]


@admin.register(AttributionRun)
class AttributionRunAdmin(admin.ModelAdmin):
    list_display = ("run_id", "tenant", "trigger", "status", "started_at", "duration_ms",
                    "lines_matched", "lines_unattributed", "events", "attributed_usd",
                    "unattributed_usd", "entries_written")
    list_filter = ("status", "trigger", "tenant")
    readonly_fields = [f.name for f in AttributionRun._meta.fields]
