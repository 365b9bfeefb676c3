"""The console shell: session login and logout, tenant choice, and the tabbed page frame the
apps register their tabs in."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError

from aforo.errors import DomainError
from aforo.eventstore import EventStoreError, EventStoreUnavailable
from aforo.models import Membership, Tenant
from aforo.money import MoneyField
from aforo.periods import PRESETS, Period, PeriodError, period_parse, period_preset, today_in

log = logging.getLogger(__name__)

TENANT_SESSION_KEY = "aforo_tenant"


def memberships_of(user) -> list[Membership]:
    return list(Membership.objects.filter(user=user).select_related("tenant")
                .order_by("tenant__slug"))


def membership_chosen(user, chosen: str | None) -> Membership | None:
    """The membership named by the session's choice, else the user's first (or None)."""
    memberships = memberships_of(user)
    for membership in memberships:
        if membership.tenant.slug == chosen:
            return membership
    return memberships[0] if memberships else None


def current_membership(request: HttpRequest) -> Membership | None:
    """The membership the console acts as: the chosen tenant, else the user's first."""
    return membership_chosen(request.user, request.session.get(TENANT_SESSION_KEY))


class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


@login_required
def switch_tenant(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        slug = request.POST.get("tenant", "")
        if any(m.tenant.slug == slug for m in memberships_of(request.user)):
            request.session[TENANT_SESSION_KEY] = slug
    # Back to the tab the switch was made on (same site only), keeping its period.
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("console-home")


# --- the tabbed page frame (Intelligence → COGS & Margins) ---------------------------------
# Each app registers its tabs (and its Overview panels) in its AppConfig.ready(); the frame
# knows none of them. The period lives in the URL (`?period=7d|30d|90d`, or
# `?from=YYYY-MM-DD&to=YYYY-MM-DD`), so a view can be shared as a link.

DEFAULT_PRESET = "30d"


@dataclass(frozen=True)
class ConsoleTab:
    key: str
    title: str
    url_name: str
    order: int


_tabs: dict[str, ConsoleTab] = {}
_overview_panels: list[Callable[..., dict[str, Any]]] = []


def console_tab_register(key: str, title: str, url_name: str, *, order: int) -> None:
    _tabs[key] = ConsoleTab(key, title, url_name, order)


def console_tabs() -> list[ConsoleTab]:
    return sorted(_tabs.values(), key=lambda tab: tab.order)


def overview_panel_register(panel: Callable[..., dict[str, Any]]) -> None:
    """`panel(request, tenant, chosen)` adds its context to the Overview tab."""
    if panel not in _overview_panels:
        _overview_panels.append(panel)


def overview_panels(request: HttpRequest, tenant: Tenant, chosen: ConsolePeriod) -> dict:
    context: dict[str, Any] = {}
    for panel in _overview_panels:
        context.update(panel(request, tenant, chosen))
    return context


def console_form(refused: str, *, tenant_of: Callable[[HttpRequest], Tenant | None],
                 back: Callable[[HttpRequest], HttpResponse]) -> Callable:
    """A console form post: `act(request, tenant, *args)` makes the change and returns what to
    tell the person (None when it said so itself); only for whom `tenant_of` gives a tenant
    (it says why not); a refusal (DomainError) shows as “<refused>: …”; back to the page
    either way."""
    def wrap(act: Callable[..., str | None]) -> Callable:
        @login_required
        @require_POST
        @functools.wraps(act)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            tenant = tenant_of(request)
            if tenant is not None:
                try:
                    said = act(request, tenant, *args, **kwargs)
                    if said:
                        messages.success(request, said)
                except DomainError as exc:
                    messages.error(request, f"{refused}: {exc.message}")
            return back(request)
        return view
    return wrap


def posted_decimal(request: HttpRequest, name: str, label: str, default: str | None = None,
                   *, optional: bool = False, max_digits: int = 20) -> Decimal | None:
    """A form's number (thousands commas allowed), else `default`, else None when `optional`:
    finite and within `max_digits` (empty, NaN, Infinity and 1e400 are refused with the
    label)."""
    raw = request.POST.get(name, "").strip().replace(",", "") or default
    if raw is None and optional:
        return None
    try:
        return MoneyField(max_digits=max_digits).run_validation(raw or "")
    except ValidationError:
        raise DomainError(f"{label} must be a number.", field=name) from None


class PageError(Exception):
    """Bad input on a console page: shown in the page, with the status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ConsolePeriod:
    period: Period
    preset: str | None  # "7d" / "30d" / "90d", or None for a custom from–to

    @property
    def params(self) -> dict[str, str]:
        """The querystring that selects this period again (what every link carries)."""
        if self.preset:
            return {"period": self.preset}
        return {"from": self.period.first.isoformat(), "to": self.period.last.isoformat()}

    @property
    def label(self) -> str:
        first, last = self.period.first, self.period.last
        return f"{first:%b %-d, %Y} – {last:%b %-d, %Y}"

    def includes_recent(self, today: date) -> bool:
        """Whether the period reaches into the last day, whose revenue is still settling."""
        return self.period.last >= today - timedelta(days=1)


def console_period(params: QueryDict, time_zone: str) -> ConsolePeriod:
    """The period the querystring asks for (aforo.periods, as the API reads it); a preset ends
    today in the tenant's time zone."""
    try:
        if params.get("from", "").strip() or params.get("to", "").strip():
            return ConsolePeriod(period_parse(params.get("from"), params.get("to"),
                                              time_zone=time_zone), None)
        preset = params.get("period", DEFAULT_PRESET).lower()
        return ConsolePeriod(period_preset(preset, time_zone=time_zone), preset)
    except PeriodError as exc:
        raise PageError(exc.message) from None


def query_link(params: dict[str, Any]) -> str:
    return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "")})


def tab_page(tab: str, build: Callable[..., dict[str, Any]]) -> Callable:
    """A login-required view rendering `console/cogs/<tab>.html` with the frame's context.

    `build(request, tenant, chosen)` returns the tab's own context. Bad input and an
    unreachable event store are shown in the page (with 400 / 503), never as a crash page.
    """

    @login_required
    def view(request: HttpRequest) -> HttpResponse:
        membership = current_membership(request)
        context: dict[str, Any] = {
            "membership": membership, "memberships": memberships_of(request.user),
            "tab": tab, "errors": [],
        }
        if membership is None:
            return render(request, "console/cogs/no_tenant.html", context)
        tenant = membership.tenant
        status = 200
        try:
            chosen = console_period(request.GET, tenant.time_zone)
        except PageError as exc:
            context["errors"].append(exc.message)
            status = exc.status
            chosen = console_period(QueryDict(""), tenant.time_zone)
        context.update(
            chosen=chosen, period=chosen.period, period_query=query_link(chosen.params),
            presets=[(key, key.upper(), query_link({"period": key})) for key in PRESETS],
            tabs=[(t.key, t.title, t.url_name, t.key == tab) for t in console_tabs()],
            settling=chosen.includes_recent(today_in(tenant.time_zone)),
        )
        try:
            context.update(build(request, tenant, chosen))
        except PageError as exc:
            context["errors"].append(exc.message)
            status = max(status, exc.status)
        except EventStoreUnavailable as exc:
            log.warning("console: event store unavailable: %s", exc)
            context["errors"].append(
                f"The event store is unavailable right now, so no figures can be shown. {exc}")
            context["unavailable"] = True
            status = 503
        except EventStoreError:
            log.exception("console: event store query failed on %s", tab)
            context["errors"].append("A query failed; it has been logged. Try again, or "
                                     "choose another period.")
            context["unavailable"] = True
            status = 500
        return render(request, f"console/cogs/{tab}.html", context, status=status)

    view.__name__ = f"console_{tab}"
    return view
