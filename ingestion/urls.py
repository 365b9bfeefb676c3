"""Rate-card routes under /api/v1/rate-cards/."""
from django.urls import path

from ingestion import rate_card_api as views

urlpatterns = [
    path("model-prices", views.ModelPriceList.as_view(), name="model-prices"),
    path("model-prices/import", views.LiteLLMImport.as_view(), name="model-prices-import"),
    path("model-prices/<int:price_id>", views.ModelPriceDetail.as_view(), name="model-price"),
    path("infra-rules", views.InfraRuleList.as_view(), name="infra-rules"),
    path("infra-rules/<int:rule_id>", views.InfraRuleDetail.as_view(), name="infra-rule"),
    path("fee-rules", views.FeeRuleList.as_view(), name="fee-rules"),
    path("fee-rules/<int:rule_id>", views.FeeRuleDetail.as_view(), name="fee-rule"),
    path("unpriced", views.UnpricedModels.as_view(), name="unpriced"),
    path("reprice", views.Reprice.as_view(), name="reprice"),
]
