"""Admin for rate cards; every save invalidates the tenant's cached rate card."""
from django.contrib import admin

from ingestion.models import GatewayFeeRule, InfraCostRule, ModelPrice, OtlpSettings
from ingestion.rate_cards import rate_card_changed


class RateCardAdmin(admin.ModelAdmin):
    list_filter = ("tenant",)
    list_select_related = ("tenant",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        rate_card_changed(obj.tenant)

    def delete_model(self, request, obj):
        tenant = obj.tenant
        super().delete_model(request, obj)
        rate_card_changed(tenant)


@admin.register(ModelPrice)
class ModelPriceAdmin(RateCardAdmin):
    list_display = ("provider", "model", "effective_from", "input_per_1m", "cached_input_per_1m",
                    "output_per_1m", "reasoning_per_1m", "cache_write_input_per_1m", "per_call",
                    "tenant", "source")
    list_filter = ("tenant", "provider", "source")
    search_fields = ("provider", "model")


@admin.register(InfraCostRule)
class InfraCostRuleAdmin(RateCardAdmin):
    list_display = ("product_id", "effective_from", "per_event_usd", "per_1k_tokens_usd", "tenant")


@admin.register(GatewayFeeRule)
class GatewayFeeRuleAdmin(RateCardAdmin):
    list_display = ("source_type", "effective_from", "per_call_usd", "pct_of_ai_cost", "tenant")


@admin.register(OtlpSettings)
class OtlpSettingsAdmin(admin.ModelAdmin):
    list_display = ("tenant", "customer_attribute", "product_attribute")
