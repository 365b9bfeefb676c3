"""Errors: the domain errors services raise, and their one translation into the API's JSON
error `{"error": {"code", "message", "field"}}` with the right status.

Services raise `DomainError`s (HackSoft's ApplicationError, Lago's failure results): what went
wrong in the product's words and which input (the service's own argument name, such as
`cap_usd`). They know nothing of HTTP: the API's exception handler gives each its status and
the field's camelCase API name (`capUsd`), and the console shows the message beside the field.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, transaction
from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from aforo.eventstore import EventStoreUnavailable, InsertNotConfirmed

# The parts a request may find down, named as /healthz names them.
EVENT_STORE, REDIS, DATABASE = "eventStore", "redis", "database"
_UNAVAILABLE = {
    EVENT_STORE: ("event_store_unavailable", "The event store is unavailable"),
    REDIS: ("redis_unavailable", "Redis is unavailable"),
    DATABASE: ("database_unavailable", "The database (PostgreSQL) is unavailable"),
}
RETRY_AFTER_S = 5


class DomainError(Exception):
    """A request a service refused: a message a person reads, and the input it is about."""

    code = "invalid"
    status = 400  # what the API answers (the service never sees it)

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


@contextmanager
def conflict_on_duplicate(message: str, *, field: str) -> Iterator[None]:
    """The writes inside run in a savepoint; one that breaks a unique constraint (a name taken
    in the tenant) is the Conflict `message` about `field`."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise Conflict(message, field=field) from None


def api_field(field: str | None) -> str | None:
    """A service's argument name as the API's field name: cap_usd → capUsd, lines.0.unit_price
    → lines.0.unitPrice (names already in camelCase pass through)."""
    if not field:
        return field
    parts = []
    for part in field.split("."):
        head, *rest = part.split("_")
        parts.append(head + "".join(word[:1].upper() + word[1:] for word in rest))
    return ".".join(parts)


class ApiError(DomainError, exceptions.APIException):
    """A client error raised by a view (an HTTP status of its own). Services raise DomainError;
    the older services that still raise this are read the same way by the console."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid",
                 status_code: int = 400) -> None:
        exceptions.APIException.__init__(self, message, code)
        self.message, self.field, self.code = message, field, code
        self.status = self.status_code = status_code


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def _first_error(detail: Any, path: tuple[str, ...] = ()) -> tuple[str | None, str, str]:
    """The first (field, message, code) of a DRF ValidationError detail tree."""
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        return _first_error(value, path if key == "non_field_errors" else (*path, str(key)))
    if isinstance(detail, list) and detail:
        return _first_error(detail[0], path)
    return (".".join(path) or None), str(detail), str(getattr(detail, "code", None) or "invalid")


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    """An exception and the ones it was raised from, as a failure re-raised by another layer
    still names the part that failed."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def unavailable_part(exc: BaseException) -> str | None:
    """The part an exception says is down (EVENT_STORE, REDIS, DATABASE), or None when it is
    not a dependency failure."""
    import redis
    from django.db import InterfaceError, OperationalError

    for cause in _causes(exc):
        if isinstance(cause, EventStoreUnavailable):
            return EVENT_STORE
        if isinstance(cause, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
            return REDIS
        if isinstance(cause, (OperationalError, InterfaceError)):
            return DATABASE
    return None


def unavailable_body(part: str, exc: BaseException | None = None) -> dict[str, Any]:
    """A 503's body: the part that is down in `error.part` and its own code, and what became
    of the request: nothing was written, unless `exc` says a cluster could not tell."""
    code, what = _UNAVAILABLE[part]
    if any(isinstance(e, InsertNotConfirmed) for e in _causes(exc)):
        message = (f"{what}: it could not confirm this write (a shard or replica failed "
                   "during it), so some of these events may be stored. Retry with the same "
                   f"event ids in {RETRY_AFTER_S} s: each event lands exactly once.")
    else:
        message = f"{what}; nothing was written. Retry in {RETRY_AFTER_S} s."
    body = error_body(code, message)
    body["error"]["part"] = part
    return body


def unavailable_response(part: str, exc: BaseException | None = None) -> JsonResponse:
    """503 with Retry-After, for plain Django views."""
    response = JsonResponse(unavailable_body(part, exc), status=503)
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, api_field(exc.field)),
                        status=exc.status)
    part = unavailable_part(exc)
    if part is not None:
        response = Response(unavailable_body(part, exc), status=503)
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first_error(exc.detail)
        response.data = error_body(code, message, field)
    else:
        detail = getattr(exc, "detail", str(exc))
        code = detail.code if hasattr(detail, "code") else getattr(exc, "default_code", "error")
        response.data = error_body(str(code), str(detail))
    return response


def api_exception_response(exc: exceptions.APIException) -> JsonResponse:
    """A DRF exception as our JSON error, for plain Django views."""
    detail = exc.detail
    code = getattr(detail, "code", None) or exc.default_code
    response = json_error(exc.status_code, str(code), str(detail),
                          getattr(exc, "field", None))
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        response["WWW-Authenticate"] = "Bearer"
    return response


def json_error(status_code: int, code: str, message: str, field: str | None = None) -> JsonResponse:
    """The same error shape from plain Django views (404/500 handlers, health)."""
    return JsonResponse(error_body(code, message, field), status=status_code)
