"""The product page's examples validate against the OpenAPI schema the code publishes."""
from __future__ import annotations

import copy

import jsonschema
import pytest
from django.test import Client

pytestmark = pytest.mark.django_db
BASE = "/api/v1/analytics/cogs/dashboard"

# Copied verbatim from the product page (cogs-and-margins) and API.md.
EXAMPLE_ROW = {
    "eventId": "evt_a7f3k2m9", "occurredAt": "2026-06-14T18:33:00Z", "customerId": "cust_acme",
    "productId": "prod_translation", "productType": "API_WITH_AI", "provider": "Anthropic",
    "model": "claude-sonnet-4-6", "toolName": None, "sourceType": "GATEWAY",
    "cogsUsd": 0.18, "revenueUsd": 0.51, "marginUsd": 0.33, "marginPct": 64.71,
    "aiCogsUsd": 0.14, "infraCogsUsd": 0.03, "feeCogsUsd": 0.01,
}
EXAMPLE_PAGE = {"content": [EXAMPLE_ROW], "page": 0, "size": 25, "totalElements": 48,
                "totalPages": 2}
EXAMPLE_COMPOSITION = {"aiCogsUsd": 38456.49, "infraCogsUsd": 6902.45, "feeCogsUsd": 2465.16,
                       "unclassifiedUsd": 1479.10, "totalCogsUsd": 49303.20}


def _json_schema(node):
    """OpenAPI 3.0 `nullable` as JSON Schema's type list, everywhere in the tree."""
    if isinstance(node, dict):
        out = {k: _json_schema(v) for k, v in node.items()}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    return node


@pytest.fixture(scope="module")
def openapi(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _response_schema(openapi, path):
    schema = openapi["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return {**_json_schema(copy.deepcopy(schema["schema"])),
            "components": _json_schema(openapi["components"])}


def _properties(openapi, schema):
    name = schema["$ref"].rsplit("/", 1)[1]
    return openapi["components"]["schemas"][name]


def test_example_transaction_page_validates(openapi):
    schema = _response_schema(openapi, f"{BASE}/transactions")
    jsonschema.validate(EXAMPLE_PAGE, schema)
    row = openapi["components"]["schemas"]["TransactionRowSchema"]
    assert set(EXAMPLE_ROW) == set(row["required"])  # every documented field, always sent
    bad = {**EXAMPLE_PAGE, "content": [{k: v for k, v in EXAMPLE_ROW.items() if k != "model"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_example_composition_validates(openapi):
    schema = _response_schema(openapi, f"{BASE}/cost-composition")
    jsonschema.validate(EXAMPLE_COMPOSITION, schema)
    assert set(_properties(openapi, schema)["properties"]) == set(EXAMPLE_COMPOSITION)


def test_served_rows_validate_too(store, tenant):
    from tests.conftest import api_client
    from tests.factories import PRODUCT_PAGE_EVENT as E1
    from tests.factories import attribute, ingest

    ingest(tenant, [E1])
    attribute(tenant, E1, "0.51")
    client = api_client(tenant)
    period = {"from": "2026-06-14", "to": "2026-06-14"}
    served = client.get(f"{BASE}/transactions", period).json()
    row = served["content"][0]
    # The product page's example row is exactly what the API serves for that event.
    assert {k: row[k] for k in EXAMPLE_ROW} == EXAMPLE_ROW
    assert row["revenueStatus"] == "SETTLED"
    schema_doc = Client().get("/api/schema/",
                              HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    jsonschema.validate(served, _response_schema(schema_doc, f"{BASE}/transactions"))
    jsonschema.validate(client.get(f"{BASE}/cost-composition", period).json(),
                        _response_schema(schema_doc, f"{BASE}/cost-composition"))
