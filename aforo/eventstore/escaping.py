"""Values into SQL text, through clickhouse-driver's own escaping, for both backends.

The ClickHouse 18.16 server cannot bind parameters server-side, so both backends render
`%(name)s` placeholders client-side with the driver's escape_param.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from clickhouse_driver.util.escape import escape_chars_map, escape_param


class _UtcServerInfo:
    @staticmethod
    def get_timezone() -> str:
        return "UTC"


class _UtcContext:
    """The minimal escape context: every DateTime column of ours is DateTime('UTC')."""

    server_info = _UtcServerInfo()


_CONTEXT = _UtcContext()


class _Literal(str):
    """A value already rendered as SQL; escape_param passes non-str objects through."""


_NEEDS_ESCAPE = re.compile("[" + re.escape("".join(escape_chars_map)) + "]")


def _escape(value: Any) -> Any:
    # :TRICKY: escape_param returns a Decimal unchanged and `%` then calls str(), which gives
    # '1E-9' for tiny values; ClickHouse would read that as a Float64. Render fixed-point.
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite Decimal cannot be sent to the event store")
        return format(value, "f")
    if isinstance(value, str) and not _NEEDS_ESCAPE.search(value):
        # Fast path: with nothing to escape, escape_param's result is the value in quotes.
        return f"'{value}'"
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, float):
        raise TypeError("floats are not accepted as event store parameters; use Decimal")
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(str(_escape(v)) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return escape_param(value, _CONTEXT)


def render(sql: str, params: Mapping[str, Any] | None) -> str:
    """SQL with every %(name)s placeholder replaced by its escaped value."""
    if not params:
        return sql
    return sql % {key: _escape(value) for key, value in params.items()}
