"""COGS & Margins reads, one module per report, each a reader on the ledger query builder:

- `breakdowns`: totals by a whitelisted dimension, the headline, products, customers, models;
- `customers`: the customer ledger, tagged, ranked and paged by the engine;
- `transactions`: the per-event ledger;
- `cost_anomalies`: events costing a multiple of their group's average.

Every number is a sum() over ledger entries (or the daily rollups that sum them), so the
per-product, per-customer, per-model rows, the composition, the headline and the transaction
rows reconcile exactly. Money stays Decimal; rounding happens only when the API renders it.
The margin rules themselves are `cogs.margins`; expected revenue is `cogs.expected`.
"""
from aforo.periods import Period, period_default
from cogs.margins import (
    HUNDRED,
    THOUSAND,
    ZERO,
    CustomerTag,
    TagFloors,
    UnitEconomics,
    cost_per_1k_tokens,
    margin_pct,
    tag_of,
    unit_economics,
)
from cogs.queries.breakdowns import (
    Dimension,
    ModelCost,
    Overview,
    Rank,
    Totals,
    allocated_cogs,
    customers_breakdown,
    daily_series,
    decimal_keys,
    models_breakdown,
    overview,
    products_breakdown,
    ranked,
    totals_by,
    totals_sum,
)
from cogs.queries.cost_anomalies import Anomaly, anomalies
from cogs.queries.customers import (
    TAG_RANKS,
    CustomerOrder,
    CustomerRow,
    customer_ledger,
    customer_tag_counts,
)
from cogs.queries.transactions import (
    RevenueSource,
    Transaction,
    TransactionFilters,
    transactions_of,
    transactions_page,
)

__all__ = [
    "HUNDRED", "TAG_RANKS", "THOUSAND", "ZERO", "Anomaly", "CustomerOrder", "CustomerRow",
    "CustomerTag", "Dimension", "ModelCost", "Overview", "Period", "Rank", "RevenueSource",
    "TagFloors", "Totals", "Transaction", "TransactionFilters", "UnitEconomics", "allocated_cogs",
    "anomalies",
    "cost_per_1k_tokens", "customer_ledger", "customer_tag_counts", "customers_breakdown",
    "daily_series", "decimal_keys", "margin_pct", "models_breakdown", "overview",
    "period_default", "products_breakdown", "ranked", "tag_of", "totals_by", "totals_sum",
    "transactions_of", "transactions_page", "unit_economics",
]
