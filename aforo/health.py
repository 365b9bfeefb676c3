"""/healthz: the database, the event store and (when configured) Redis; 503 names what is down."""
from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from aforo import eventstore


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    import redis

    redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()


def health_checks() -> dict[str, str]:
    """Each part's status: "ok" or the error that made it fail."""
    checks = {"database": _check_database, "eventStore": lambda: eventstore.get_store().ping()}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    status = {}
    for name, check in checks.items():
        try:
            check()
            status[name] = "ok"
        except Exception as exc:  # any failure of a part is the part being down
            status[name] = f"down: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return status


def healthz(request):
    parts = health_checks()
    down = [name for name, state in parts.items() if state != "ok"]
    body = {"status": "ok" if not down else "down", "down": down, "parts": parts,
            "mode": "server" if settings.CLICKHOUSE_URL else "embedded"}
    return JsonResponse(body, status=503 if down else 200)
