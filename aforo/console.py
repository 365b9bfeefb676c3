"""The console shell: session login and logout, tenant choice, the Intelligence navigation."""
from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from aforo.models import Membership

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
