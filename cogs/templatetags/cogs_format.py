"""How the console writes money, percentages and counts: exact, and never a tiny cost as $0.00."""
from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from django import template

register = template.Library()
MAX_DECIMALS = 9  # the ledger's own precision (Decimal(18, 9))


def usd_text(value: Decimal | int | float | str | None) -> str:
    """$1,234.56 for amounts of a cent or more; enough digits to show a smaller amount.

    $0.0034 and $0.000000412 stay readable instead of collapsing to $0.00; zero is $0.00.
    """
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value))
    if amount == 0:
        return "$0.00"
    sign = "−" if amount < 0 else ""
    amount = abs(amount)
    if amount >= Decimal("0.01"):
        text = f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN):,}"
    else:
        # Two significant digits: the first non-zero decimal and the one after it.
        decimals = min(MAX_DECIMALS, -amount.adjusted() + 1)
        text = format(amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN),
                      "f").rstrip("0")
        if text.endswith("."):
            text += "00"
    return f"{sign}${text}"


def usd_exact_text(value: Decimal | int | float | str | None) -> str:
    """A per-event amount to the API's six decimals ($0.038334, $0.50); smaller than that,
    two significant digits as `usd_text` writes them."""
    if value is None or value == "":
        return "—"
    amount = Decimal(str(value))
    if amount == 0 or abs(amount) >= 1 or abs(amount) < Decimal("0.000001"):
        return usd_text(amount)
    sign = "−" if amount < 0 else ""
    text = format(abs(amount).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN), "f")
    whole, fraction = text.split(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"{sign}${whole}.{fraction}"


@register.filter
def usd(value) -> str:
    return usd_text(value)


@register.filter
def usd_exact(value) -> str:
    return usd_exact_text(value)


@register.filter
def pct(value) -> str:
    """Two decimals and a % sign; a dash where the percentage is undefined (no revenue)."""
    if value is None or value == "":
        return "—"
    return f"{Decimal(str(value)).quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN)}%"


@register.filter
def count(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{int(value):,}"


@register.filter
def rate_1k(value) -> str:
    """A price per 1K tokens, which is often a fraction of a cent."""
    return "—" if value is None else usd_text(value)


@register.filter
def sign_class(value) -> str:
    """A CSS class for a margin: negative margins read red."""
    if value is None or value == "":
        return ""
    return "negative" if Decimal(str(value)) < 0 else ""


@register.filter
def per_event(amount, events) -> Decimal | None:
    """An amount divided by an event count (None without events)."""
    if amount is None or not events:
        return None
    return Decimal(str(amount)) / int(events)


@register.filter
def days_around(moment) -> str:
    """`from=…&to=…` for the day before to the day after a moment (UTC days): the window a
    link to the session around an event opens."""
    from datetime import timedelta, timezone

    day = moment.astimezone(timezone.utc).date()
    return f"from={day - timedelta(days=1)}&to={day + timedelta(days=1)}"
