"""Destinations: what a notification may be sent to, checked before it is saved, and how roles
that may not read one see it."""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email

from aforo import outbound
from aforo.errors import DomainError
from notifications.models import Channel

MAX_DESTINATION = 500  # the model's column
MAX_EMAIL = 254  # RFC 5321's path limit
PAGERDUTY_KEY = re.compile(r"[A-Za-z0-9]{8,64}")


def check_destination(channel: str, destination: str, field: str = "destination") -> None:
    """A destination's form, length first (so no check ever runs on a megabyte): an email
    address (Django's validator), a PagerDuty routing key, or a public https URL."""
    destination = destination or ""
    if len(destination) > MAX_DESTINATION:
        raise DomainError(f"The destination is longer than {MAX_DESTINATION} characters.",
                          field=field)
    if channel == Channel.EMAIL:
        if len(destination) > MAX_EMAIL:
            raise DomainError(f"The email address is longer than {MAX_EMAIL} characters.",
                              field=field)
        try:
            validate_email(destination)
        except ValidationError:
            raise DomainError("The destination must be an email address.",
                              field=field) from None
        return
    if channel == Channel.PAGERDUTY:
        if not PAGERDUTY_KEY.fullmatch(destination):
            raise DomainError("The destination must be a PagerDuty routing key "
                              "(8 to 64 letters and digits).", field=field)
        return
    try:
        URLValidator(schemes=["https", "http"])(destination)
        outbound.check_url(destination)
    except ValidationError:
        raise DomainError("The destination must be an https URL.", field=field) from None
    except outbound.DestinationRefused as exc:
        raise DomainError(f"That destination cannot be used: {exc}", field=field) from None


def destination_masked(destination: str) -> str:
    """A destination as roles that may not read it see it: enough to recognise, not to use
    (a Slack URL or routing key is a credential)."""
    if not destination:
        return destination
    if "://" in destination:
        scheme, _, rest = destination.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/…"
    if "@" in destination:
        local, _, domain = destination.rpartition("@")
        return f"{local[:1]}…@{domain}"
    return f"…{destination[-4:]}" if len(destination) > 8 else "…"
