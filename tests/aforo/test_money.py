"""Money has one home (aforo.money) and one JSON form: exact numbers, six decimals at most."""
from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework import serializers

from aforo.money import LEDGER_MAX, MoneyField, fits_ledger, json_bytes, pct, usd

ROOT = Path(__file__).resolve().parents[2]
APPS = ("aforo", "ingestion", "billing", "cogs", "budgets", "margin_guard", "intelligence",
        "cost_sources", "entitlements", "exports", "notifications")


def _app_modules() -> list[Path]:
    return [path for app in APPS for path in (ROOT / app).rglob("*.py")
            if "migrations" not in path.parts]


def _api_modules() -> list[Path]:
    return [path for path in _app_modules()
            if path.name in ("api.py", "openapi.py", "renderers.py", "money.py", "errors.py")
            or path.name.endswith("_api.py")]


def test_no_api_module_makes_a_float():
    found = [f"{path.relative_to(ROOT)}:{number}"
             for path in _api_modules()
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\bfloat\(", line)]
    assert len(_api_modules()) >= 8
    assert not found, f"money must not pass through float in API modules: {found}"


def test_the_nano_quantum_is_defined_only_in_the_money_module():
    spelled = re.compile(r"""Decimal\(\s*["']0\.000000001["']\s*\)|scaleb\(\s*-9\s*\)|"""
                         r"""Decimal\(\s*["']1e-9["']\s*\)""", re.IGNORECASE)
    found = [str(path.relative_to(ROOT)) for path in _app_modules()
             if path.name != "money.py" and spelled.search(path.read_text())]
    assert not found


def test_the_exact_renderer_is_the_api_default():
    assert settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] == [
        "aforo.renderers.ExactJSONRenderer"]


def test_money_renders_as_exact_json_numbers():
    body = json_bytes({"a": usd(Decimal("0.1234565")), "b": usd(Decimal("0.1")),
                       "c": pct(Decimal("12.345")), "d": None})
    assert body == b'{"a":0.123456,"b":0.100000,"c":12.34,"d":null}'
    assert json.loads(body, parse_float=Decimal)["b"] == Decimal("0.1")


class _Amount(serializers.Serializer):
    amountUsd = MoneyField()


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "nan", "1e400", "abc",
                                 "0.0000000001"])
def test_money_input_refuses_non_finite_and_over_precise_values(raw):
    data = _Amount(data={"amountUsd": raw})
    assert not data.is_valid()
    assert "amountUsd" in data.errors


def test_money_output_has_at_most_six_decimals():
    assert _Amount({"amountUsd": Decimal("1.123456789")}).data == {
        "amountUsd": Decimal("1.123457")}


def test_the_ledger_bound_is_decimal_18_9():
    assert fits_ledger(LEDGER_MAX) and fits_ledger(-LEDGER_MAX)
    assert not fits_ledger(LEDGER_MAX + Decimal("0.000000001"))
    assert not fits_ledger(Decimal("NaN"))


def test_an_api_response_writes_money_as_numbers_not_strings(api, store):
    created = api.post("/api/v1/cogs/budgets", {"name": "b", "period": "MONTHLY",
                                                "capUsd": "10.1234567"}, format="json")
    assert created.status_code == 201, created.content
    assert b'"capUsd":10.123457' in created.content
    assert b'"spentUsd":0.000000' in created.content


def _schema_numbers(node, path=""):
    """Every (path, schema) of a number in the OpenAPI document."""
    if isinstance(node, dict):
        if node.get("type") == "number" or node.get("format") in ("double", "float", "decimal"):
            yield path, node
        for key, value in node.items():
            yield from _schema_numbers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schema_numbers(value, f"{path}/{index}")


def test_the_openapi_schema_declares_no_number_a_float():
    # Every number the API reads or writes is an exact decimal (money, percentages, quantities,
    # a signal's figures): the schema must not tell a client generator to hold it in a double.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    numbers = list(_schema_numbers(schema))
    floats = [path for path, node in numbers if node.get("format") in ("double", "float")]
    as_strings = [path for path, node in numbers if node.get("type") == "string"]
    assert len(numbers) > 100
    assert not floats, f"declared as floats: {floats}"
    assert not as_strings, f"decimals declared as strings, written as numbers: {as_strings}"
