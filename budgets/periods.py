"""Calendar-aligned budget periods and rule windows, in the tenant's time zone."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "ANNUAL": 12}


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1)


def period_bounds(period: str, now: datetime, tz: str = "UTC") -> tuple[datetime, datetime]:
    """The calendar month, quarter or year holding `now` in `tz`, as UTC [start, end)."""
    local = now.astimezone(ZoneInfo(tz))
    months = MONTHS[period]
    first_month = (local.month - 1) // months * months + 1
    start = local.replace(month=first_month, day=1, hour=0, minute=0, second=0, microsecond=0)
    end = _add_months(start, months)
    # :TRICKY: replace() keeps the UTC offset of `local`; re-attach the zone so a period that
    # spans a DST change gets the right offset at each end.
    zone = ZoneInfo(tz)
    start = start.replace(tzinfo=None).replace(tzinfo=zone)
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}


def window_bounds(window: str, now: datetime, tz: str = "UTC") -> tuple[datetime, datetime]:
    """A rolling window ending now, or the calendar month to date (PTD)."""
    if window == "PTD":
        start, _end = period_bounds("MONTHLY", now, tz)
        return start, now
    return now - WINDOWS[window], now
