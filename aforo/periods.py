"""Periods and windows in a tenant's time zone: the one parser the API, the console, budgets,
alert rules and Margin Guard share.

- A `Period` is calendar days first..last (both included) in a time zone: the dashboards'.
- `period_parse` reads `from`/`to` as the API and the console take them (one end given: the
  30 days from or to it; none: the last 30 days ending today); `api_period_parse` is it for the
  API (a 400 naming the parameter); `period_preset` reads 7d/30d/90d.
- `period_bounds` is the month, quarter or year holding a moment (budgets); `window_bounds`
  a rolling window ending now or the month to date (alert rules, Margin Guard).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from aforo.errors import ApiError

DEFAULT_DAYS = 30
MAX_PERIOD_DAYS = 731
PRESETS = {"7d": 7, "30d": 30, "90d": 90}
MONTHS = {"MONTHLY": 1, "QUARTERLY": 3, "ANNUAL": 12}
DAYS = {"DAILY": 1, "WEEKLY": 7}
WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7),
           "30d": timedelta(days=30)}


class PeriodError(ValueError):
    """A period that cannot be read: which parameter, and a message a person reads."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Period:
    """Calendar days `first`..`last` (both included) in `time_zone`."""

    first: date
    last: date
    time_zone: str = "UTC"

    @property
    def start_at(self) -> datetime:
        """The first instant of the period, in UTC."""
        return day_start(self.first, self.time_zone)

    @property
    def end_at(self) -> datetime:
        """The first instant after the period, in UTC (exclusive end)."""
        return day_start(self.last + timedelta(days=1), self.time_zone)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def is_utc(self) -> bool:
        return self.time_zone == "UTC"


def day_start(day: date, time_zone: str) -> datetime:
    """Midnight of `day` in `time_zone`, in UTC."""
    local = datetime.combine(day, time.min, tzinfo=ZoneInfo(time_zone))
    return local.astimezone(timezone.utc)


def utc_midnight(moment: datetime, *, up: bool) -> datetime:
    """The UTC midnight at or before `moment` (`up`: at or after it)."""
    day = day_start(moment.astimezone(timezone.utc).date(), "UTC")
    return day + timedelta(days=1) if up and day < moment else day


def today_in(time_zone: str) -> date:
    return datetime.now(ZoneInfo(time_zone)).date()


def period_default(*, time_zone: str = "UTC", today: date | None = None) -> Period:
    """The last 30 days, ending today (in the tenant's time zone)."""
    today = today or today_in(time_zone)
    return Period(first=today - timedelta(days=DEFAULT_DAYS - 1), last=today,
                  time_zone=time_zone)


FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(2100, 12, 31)


def _day(raw: str, name: str) -> date:
    try:
        if len(raw) != 10:
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise PeriodError(f"{name} must be a date like 2026-06-14 (YYYY-MM-DD).",
                          field=name) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        # :TRICKY: the ledger's DateTime('UTC') holds 1970..2105; outside it ClickHouse fails
        # to parse the bound (a 500) instead of finding nothing.
        raise PeriodError(f"{name} must be between {FIRST_DAY} and {LAST_DAY}.", field=name)
    return day


def period_parse(first_raw: str | None, last_raw: str | None, *, time_zone: str) -> Period:
    """`from`/`to` as inclusive ISO dates; one end alone means the 30 days from or to it."""
    first_raw, last_raw = (first_raw or "").strip(), (last_raw or "").strip()
    if not first_raw and not last_raw:
        return period_default(time_zone=time_zone)
    first = _day(first_raw, "from") if first_raw else None
    last = _day(last_raw, "to") if last_raw else None
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    last = last or first + timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise PeriodError("from must be on or before to.", field="from")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise PeriodError(f"The period may span at most {MAX_PERIOD_DAYS} days.", field="from")
    return Period(first=first, last=last, time_zone=time_zone)



def api_period_parse(first_raw: str | None, last_raw: str | None, *, time_zone: str) -> Period:
    """`period_parse` for the API: a period it cannot read is a 400 naming the parameter."""
    try:
        return period_parse(first_raw, last_raw, time_zone=time_zone)
    except PeriodError as exc:
        raise ApiError(exc.message, field=exc.field) from None

def period_preset(preset: str, *, time_zone: str) -> Period:
    """7d, 30d or 90d: that many days ending today."""
    days = PRESETS.get(preset.lower())
    if days is None:
        raise PeriodError("The period must be 7D, 30D, 90D or a from–to.", field="period")
    today = today_in(time_zone)
    return Period(first=today - timedelta(days=days - 1), last=today, time_zone=time_zone)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.month - 1 + months
    return moment.replace(year=moment.year + index // 12, month=index % 12 + 1)


def period_bounds(period: str, now: datetime, tz: str = "UTC") -> tuple[datetime, datetime]:
    """The calendar day, week (Monday first), month, quarter or year holding `now` in `tz`, as
    UTC [start, end)."""
    local = now.astimezone(ZoneInfo(tz)).replace(hour=0, minute=0, second=0, microsecond=0)
    if period in DAYS:
        start = local - timedelta(days=local.weekday() if period == "WEEKLY" else 0)
        end = start.replace(tzinfo=None) + timedelta(days=DAYS[period])
    else:
        months = MONTHS[period]
        first_month = (local.month - 1) // months * months + 1
        start = local.replace(month=first_month, day=1)
        end = _add_months(start, months)
    # :TRICKY: replace() and timedelta keep the UTC offset of `local`; re-attach the zone so a
    # period that spans a DST change gets the right offset at each end.
    zone = ZoneInfo(tz)
    start = start.replace(tzinfo=None).replace(tzinfo=zone)
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def window_bounds(window: str, now: datetime, tz: str = "UTC") -> tuple[datetime, datetime]:
    """A rolling window ending now, or the calendar month to date (PTD)."""
    if window == "PTD":
        start, _end = period_bounds("MONTHLY", now, tz)
        return start, now
    return now - WINDOWS[window], now
