"""Money in one place: the quanta, the ledger's bounds, the model and serializer fields, and the
one JSON rendering of money (exact decimal numbers, never a float).

Inside, money is `Decimal` at the ledger's nine decimals; it leaves the system (API responses,
webhook bodies) as a JSON number rounded half-even to six decimals, percentages to two, and
per-1K-token rates keep nine. Every renderer and payload builder calls `usd()`, `pct()` or
`rate()` and encodes with `json_bytes()`, so there is one form of money on the wire.
"""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec
from django.db import models
from rest_framework import serializers
from rest_framework.utils.encoders import JSONEncoder

# --- quanta and bounds ---------------------------------------------------------------------

LEDGER_PLACES = 9
NANO = Decimal(1).scaleb(-LEDGER_PLACES)  # the ledger's quantum: Decimal(18, 9)
MICRO = Decimal("0.000001")  # money in responses: six decimals at most
CENT = Decimal("0.01")  # percentages in responses: two decimals
RATE_QUANTUM = NANO  # a price per 1K tokens: $0.0375 per 1M is $0.0000375 per 1K
# :TRICKY: the ledger's money columns are Decimal(18, 9): nine digits before the point. A value
# past this fails the whole insert it is part of, and ingest shares one insert between the
# requests (and tenants) of a moment, so every value is checked against it before writing.
LEDGER_MAX = Decimal("999999999.999999999")

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def ledger(value: Decimal) -> Decimal:
    """Rounded to the ledger's nine decimals, half to even."""
    return value.quantize(NANO, rounding=ROUND_HALF_EVEN)


def to_nanos(value: Decimal) -> int:
    """A ledger amount (dollars or credits) as an integer count of its 10^-9 quantum, half-even
    at the ninth decimal: the integer the hot paths and the credit ledger carry."""
    return int(value.scaleb(LEDGER_PLACES).to_integral_value(rounding=ROUND_HALF_EVEN))


def from_nanos(nanos: int) -> Decimal:
    """The exact Decimal (nine places) of an integer count of nanos."""
    return Decimal(int(nanos)).scaleb(-LEDGER_PLACES).quantize(NANO)


def fits_ledger(value: Decimal) -> bool:
    """Whether a value can be written to a Decimal(18, 9) column."""
    return value.is_finite() and -LEDGER_MAX <= value <= LEDGER_MAX


def usd(value: Decimal | None) -> Decimal | None:
    """Money as a response shows it: at most six decimals, half-even; None stays None."""
    return None if value is None else value.quantize(MICRO, rounding=ROUND_HALF_EVEN)


def pct(value: Decimal | None) -> Decimal | None:
    """A percentage as a response shows it: two decimals, half-even."""
    return None if value is None else value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def rate(value: Decimal | None) -> Decimal | None:
    """A per-1K-token price as a response shows it: nine decimals, half-even."""
    return None if value is None else value.quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


# --- model fields --------------------------------------------------------------------------

def money_field(**kwargs: Any) -> models.DecimalField:
    """A USD amount column: nine decimals, up to 10^15."""
    return models.DecimalField(max_digits=24, decimal_places=LEDGER_PLACES, **kwargs)


def quantity_field(**kwargs: Any) -> models.DecimalField:
    """A usage or credit quantity column (a quota's limit, a balance): nine decimals, up to
    10^29, the ledger's sums."""
    return models.DecimalField(max_digits=38, decimal_places=LEDGER_PLACES, **kwargs)


def price_field(**kwargs: Any) -> models.DecimalField:
    """A unit price column (per 1M tokens, per unit): twelve decimals, for sub-nano unit prices."""
    return models.DecimalField(max_digits=24, decimal_places=12, **kwargs)


def pct_field(**kwargs: Any) -> models.DecimalField:
    """A percentage column (floors, thresholds): two decimals."""
    return models.DecimalField(max_digits=7, decimal_places=2, **kwargs)


# --- serializer fields ---------------------------------------------------------------------

class MoneyField(serializers.DecimalField):
    """USD in an API body: in, a finite number or numeric string of at most nine decimals
    (NaN and Infinity are refused); out, a JSON number of at most six decimals."""

    def __init__(self, *, places_out: int = 6, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 24)
        kwargs.setdefault("decimal_places", LEDGER_PLACES)
        kwargs["coerce_to_string"] = False
        self.quantum_out = Decimal(1).scaleb(-places_out)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value).quantize(self.quantum_out, rounding=ROUND_HALF_EVEN)


class PctField(MoneyField):
    """A percentage in an API body: two decimals in and out."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", 7)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(places_out=2, **kwargs)


# --- the JSON rendering --------------------------------------------------------------------

_DRF_ENCODER = JSONEncoder()


def _fallback(value: Any) -> Any:
    # str subclasses (DRF's ErrorDetail, lazy translations once forced) are plain strings;
    # anything else msgspec does not know goes through DRF's own rules.
    if isinstance(value, str):
        return str(value)
    return _DRF_ENCODER.default(value)


# :TRICKY: decimal_format="number" writes a Decimal's own digits as a JSON number: no float is
# ever made, so 0.1 stays 0.1 and a 9-decimal rate keeps its digits.
_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=_fallback)


def json_bytes(value: Any) -> bytes:
    """The one JSON encoding of anything holding money (API responses, webhook bodies)."""
    return _ENCODER.encode(value)
