"""POLL sources: fetch a provider's cost pages with the source's stored credentials, follow
their pagination, retry what is worth retrying, then import the pages like an uploaded file.

OpenAI (`GET /v1/organization/costs`, `Authorization: Bearer`, `start_time`/`end_time` in Unix
seconds, `page` = the previous page's `next_page`) and Anthropic (`GET
/v1/organizations/cost_report`, `x-api-key`, `starting_at`/`ending_at` ISO 8601, `page`). The
window starts two days before the last polled day (providers restate recent days) or 30 days
back the first time, and ends tomorrow; the import replaces the days the pages cover.
"""
from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

from aforo import outbound
from aforo.credentials import credentials_open
from aforo.errors import DomainError
from cost_sources.imports import cost_import_file, cost_import_start
from cost_sources.models import CostImport, CostSource, Kind, Mode

log = logging.getLogger(__name__)

FIRST_LOOKBACK_DAYS = 30
RESTATED_DAYS = 2
MAX_PAGES = 500
ATTEMPTS = 4  # a page is tried this often on 429, 5xx or no response
BACKOFF_S = (0.5, 2.0, 5.0)
RETRIED = {408, 425, 429, 500, 502, 503, 504}


class PollFailed(DomainError):
    """The provider could not be read; the message says how (a status class, never its body)."""

    code = "poll_failed"
    status = 502


@dataclass(frozen=True)
class Provider:
    default_url: str
    headers: Callable[[str], dict[str, str]]
    window: Callable[[date, date], dict[str, str]]
    page_size: dict[str, str]


PROVIDERS = {
    Kind.OPENAI_COSTS: Provider(
        default_url="https://api.openai.com/v1/organization/costs",
        headers=lambda key: {"Authorization": f"Bearer {key}"},
        window=lambda first, end: {
            "start_time": str(int(datetime.combine(first, datetime.min.time(),
                                                   timezone.utc).timestamp())),
            "end_time": str(int(datetime.combine(end, datetime.min.time(),
                                                 timezone.utc).timestamp()))},
        page_size={"bucket_width": "1d", "limit": "180"}),
    Kind.ANTHROPIC_COSTS: Provider(
        default_url="https://api.anthropic.com/v1/organizations/cost_report",
        headers=lambda key: {"x-api-key": key, "anthropic-version": "2023-06-01"},
        window=lambda first, end: {"starting_at": f"{first.isoformat()}T00:00:00Z",
                                   "ending_at": f"{end.isoformat()}T00:00:00Z"},
        page_size={"bucket_width": "1d", "limit": "31"}),
}


def poll_window(source: CostSource, now: datetime) -> tuple[date, date]:
    """[first, end) in UTC days: from two days before the last polled day, or 30 days back."""
    end = now.astimezone(timezone.utc).date() + timedelta(days=1)
    last = (source.imports.filter(status=CostImport.Status.SUCCEEDED,
                                  period_end__isnull=False)
            .order_by("-period_end").values_list("period_end", flat=True).first())
    first = (last - timedelta(days=RESTATED_DAYS) if last
             else end - timedelta(days=FIRST_LOOKBACK_DAYS))
    return min(first, end - timedelta(days=1)), end


def _fetch(url: str, headers: dict[str, str], sleep: Callable[[float], None]) -> bytes:
    for attempt in range(ATTEMPTS):
        try:
            return outbound.get(url, headers).body
        except outbound.DestinationRefused as exc:
            raise PollFailed(f"The source's URL is refused: {exc}", field="base_url") from None
        except outbound.DeliveryFailed as exc:
            retry = exc.status is None or exc.status in RETRIED
            if not retry or attempt == ATTEMPTS - 1:
                tried = f" after {attempt + 1} attempts" if attempt else ""
                raise PollFailed(f"The provider answered {exc.history}{tried}.",
                                 field="base_url") from None
            log.info("cost poll: %s, retrying (attempt %d)", exc.history, attempt + 1)
            sleep(BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)])
    raise AssertionError("unreachable")


def poll_pages(source: CostSource, *, first: date, end: date,
               sleep: Callable[[float], None] = time.sleep) -> list[bytes]:
    """Every page of the window, as the provider's own bytes (their amounts stay exact)."""
    provider = PROVIDERS.get(source.kind)
    if provider is None:
        raise PollFailed(f"{source.get_kind_display()} cannot be polled; upload its files.",
                         field="kind")
    if not source.credentials_sealed:
        raise PollFailed("This source has no credentials to poll with.", field="credentials")
    headers = provider.headers(credentials_open(source.credentials_sealed))
    base = source.base_url or provider.default_url
    params = {**provider.page_size, **provider.window(first, end)}
    pages: list[bytes] = []
    cursor = None
    while True:
        query = {**params, **({"page": cursor} if cursor else {})}
        body = _fetch(f"{base}{'&' if '?' in base else '?'}{urlencode(query)}", headers, sleep)
        try:
            page = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PollFailed("The provider's answer is not JSON.", field="base_url") from None
        if not isinstance(page, dict) or not isinstance(page.get("data"), list):
            raise PollFailed("The provider's answer has no `data` list of buckets.",
                             field="base_url")
        pages.append(body)
        cursor = page.get("next_page")
        if not page.get("has_more") or not cursor:
            return pages
        if len(pages) >= MAX_PAGES:
            raise PollFailed(f"More than {MAX_PAGES} pages; narrow the window.",
                             field="base_url")


def cost_source_poll(*, source: CostSource, now: datetime | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> CostImport:
    """Poll the provider and import what it returned; a failure is a FAILED run (PollFailed)."""
    if source.mode != Mode.POLL:
        raise DomainError("Only POLL sources are polled; upload this source's files.",
                          field="mode")
    now = now or datetime.now(timezone.utc)
    first, end = poll_window(source, now)
    label = f"poll {first.isoformat()}..{end.isoformat()}"
    try:
        pages = poll_pages(source, first=first, end=end, sleep=sleep)
    except DomainError as exc:
        run = cost_import_start(source=source, file_name=label, now=now)
        run.status, run.error, run.finished_at = CostImport.Status.FAILED, exc.message, now
        run.save()
        raise
    # One JSON array of the pages, as the provider wrote them (the importer reads arrays).
    document = b"[" + b",".join(pages) + b"]"
    return cost_import_file(source=source, stream=io.BytesIO(document), file_name=label,
                            now=now)


def due_sources(now: datetime) -> list[CostSource]:
    """POLL sources whose last successful poll is older than their schedule (daily unless
    hourly)."""
    out = []
    for source in CostSource.objects.filter(mode=Mode.POLL).exclude(credentials_sealed=""):
        every = timedelta(hours=1) if source.schedule == "hourly" else timedelta(days=1)
        last = (source.imports.filter(status=CostImport.Status.SUCCEEDED)
                .order_by("-started_at").values_list("started_at", flat=True).first())
        if last is None or now - last >= every - timedelta(minutes=5):
            out.append(source)
    return out
