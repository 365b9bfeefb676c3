"""Request size limits: the body cap (413) of every API endpoint, and bounded dict fields.

DRF parses the raw stream, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE never applies to it: this
middleware answers 413 with a JSON error before a view reads a body over its cap. A view may
declare a larger cap with a `max_body_bytes` attribute (ingest, imports).
"""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from aforo.errors import json_error

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def body_limit(view_func: Any) -> int:
    """The cap of a view: its class's or function's `max_body_bytes`, else the default."""
    owner = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
    return int(getattr(owner, "max_body_bytes", None) or getattr(view_func, "max_body_bytes", 0)
               or settings.AFORO_MAX_JSON_BODY_BYTES)


def _too_large(limit: int):
    return json_error(413, "payload_too_large",
                      f"The request body exceeds {limit} bytes; send less per request.")


class BodyLimitMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method not in BODY_METHODS or not request.path.startswith(("/api/", "/v1/")):
            return None
        limit = body_limit(view_func)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return _too_large(limit)
        if not declared and request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # No length announced: read it here (bounded by DATA_UPLOAD_MAX_MEMORY_SIZE).
            try:
                if len(request.body) > limit:
                    return _too_large(limit)
            except RequestDataTooBig:
                return _too_large(limit)
        return None


class BodyCeiling:
    """ASGI: no request body over the largest cap any view has (AFORO_MAX_BODY_BYTES) reaches
    Django, which reads a whole body (spooling it to disk) before any middleware runs.

    A declared Content-Length over it is answered 413 without reading a byte; a body sent
    without one (chunked) is read up to it, and answered 413 as soon as it is past. Each
    view's own, smaller cap stays with BodyLimitMiddleware."""

    def __init__(self, app, limit: int | None = None) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit or settings.AFORO_MAX_BODY_BYTES
        headers = dict(scope.get("headers", ()))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        if declared is not None or b"transfer-encoding" not in headers:
            # The server holds a body to its declared length; without either header there is
            # none.
            await self.app(scope, receive, send)
            return
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _refuse(send, limit)
                return
            if not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(send, limit: int) -> None:
    response = _too_large(limit)
    headers = [(k.lower().encode(), v.encode()) for k, v in response.items()]
    await send({"type": "http.response.start", "status": 413,
                "headers": [*headers, (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": response.content})


def limited(view_func: Any, max_body_bytes: int) -> Any:
    """A plain view function with its own body cap."""
    view_func.max_body_bytes = max_body_bytes
    return view_func


class BoundedDictField(serializers.DictField):
    """A JSON object of at most `max_items` entries whose keys are at most `max_key_length`."""

    def __init__(self, *, max_items: int, max_key_length: int = 200, **kwargs: Any) -> None:
        self.max_items = max_items
        self.max_key_length = max_key_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict:
        if isinstance(data, dict):
            if len(data) > self.max_items:
                raise serializers.ValidationError(f"At most {self.max_items} entries.")
            if any(len(str(key)) > self.max_key_length for key in data):
                raise serializers.ValidationError(
                    f"Keys are at most {self.max_key_length} characters.")
        return super().to_internal_value(data)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogates_refused(self, value: Any) -> None:
    match = _SURROGATE.search(str(value))
    if match:
        raise serializers.ValidationError(
            self.message.format(code_point=ord(match.group())), code=self.code)


def install_fast_text_checks() -> None:
    """:TRICKY: DRF runs every validator of a CharField even when max_length already failed,
    and its surrogate check walks the string in a Python generator: 65 ms for a 1 MB value,
    on every string field of every endpoint. The same check as one regex search runs at C speed
    (about 1 ms per MB), so an oversized field costs nothing before its 400."""
    ProhibitSurrogateCharactersValidator.__call__ = _surrogates_refused
