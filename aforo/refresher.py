"""One thread per process keeps what the hot doors answer from current, off the request path.

- every MIRROR_EVERY_S (0.25 s): the registered mirrors re-read the shared cache (the guard's
  profiles and the customers' entitlement and wallet states a decision read in the last
  MIRROR_KEEP_S, margin_guard.decision; the others are dropped);
- every TOKENS_EVERY_S (1 s): the API tokens used through a door in the last TOKEN_KEEP_S are
  re-validated in one raw SQL query (revoked, expired, user deactivated or no longer holding
  the token's role: dropped, and forgotten by aforo.authentication too), and the doors' uses
  are written to `last_used_at` (one batched statement), with the slow path's 60-second granularity.

A door trusts a held token for TOKEN_TRUST_S after its last validation, so a revoked token is
refused within TOKENS_EVERY_S plus one round's query (and never past TOKEN_TRUST_S, should the
thread stall: the door then goes the way that reads PostgreSQL).

The thread starts with the first door call when AFORO_REFRESH_THREAD is on (the default); the
tests switch it off and call `refresh_round()` themselves.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import close_old_connections, connection

log = logging.getLogger(__name__)
MIRROR_EVERY_S = 0.25
TOKENS_EVERY_S = 1.0
TOKEN_TRUST_S = 2.0
TOKEN_KEEP_S = 300.0
LAST_USED_GRANULARITY_S = 60


class HeldToken:
    """What a door needs of a validated token (slotted: read on every call)."""

    __slots__ = ("pk", "tenant_id", "tenant_slug", "role", "expires_at", "checked", "used")

    def __init__(self, pk: int, tenant_id: int, tenant_slug: str, role: str,
                 expires_at: float | None, checked: float) -> None:
        self.pk = pk
        self.tenant_id = tenant_id
        self.tenant_slug = tenant_slug
        self.role = role
        self.expires_at = expires_at  # wall time, None: never
        self.checked = checked        # monotonic time of the validation it rests on
        self.used = checked           # monotonic time of its last use through a door


_held: dict[str, HeldToken] = {}      # token hash -> held token
_used: dict[int, float] = {}          # token pk -> wall time of its last door use, unwritten
_mirrors: list[Callable[[], object]] = []
_thread: list[threading.Thread] = []
_start_lock = threading.Lock()
_last_tokens = [0.0]


def mirror_register(refresh: Callable[[], object]) -> None:
    """A mirror for the rounds to refresh (called at import by the module that owns it)."""
    if refresh not in _mirrors:
        _mirrors.append(refresh)


def token_hold(token_hash: str, token, tenant_slug: str, checked: float) -> None:
    """Hold a token the slow path has just validated (`checked`: when it read it from the
    database, monotonic), so the doors answer its next calls themselves."""
    expires = token.expires_at.timestamp() if token.expires_at is not None else None
    held = _held.get(token_hash)
    if held is not None and held.checked >= checked:
        return
    _held[token_hash] = HeldToken(token.pk, token.tenant_id, tenant_slug, token.role, expires,
                                  checked)


def token_drop(token_hash: str) -> None:
    """The doors stop answering this token themselves (revoked in this process)."""
    _held.pop(token_hash, None)


def token_held(token_hash: str) -> HeldToken | None:
    """The held token, when validated under TOKEN_TRUST_S ago and not expired; its use is
    noted for the next `last_used_at` write. No I/O: for the event loop."""
    held = _held.get(token_hash)
    if held is None:
        return None
    now = time.monotonic()
    if now - held.checked > TOKEN_TRUST_S:
        return None
    wall = time.time()
    if held.expires_at is not None and held.expires_at <= wall:
        return None
    held.used = now
    _used[held.pk] = wall
    return held


def refresher_start() -> None:
    """Start this process's refresher thread (once; not when AFORO_REFRESH_THREAD is off)."""
    if _thread or not settings.AFORO_REFRESH_THREAD:
        return
    with _start_lock:
        if _thread:
            return
        thread = threading.Thread(target=_run, name="aforo-refresher", daemon=True)
        _thread.append(thread)
        thread.start()


def _run() -> None:
    while True:
        began = time.monotonic()
        try:
            refresh_round(tokens=began - _last_tokens[0] >= TOKENS_EVERY_S)
        except Exception:  # what is held goes stale and the doors fall back meanwhile
            log.warning("refresh round failed", exc_info=True)
        time.sleep(max(0.0, MIRROR_EVERY_S - (time.monotonic() - began)))


def refresh_round(*, tokens: bool = True) -> None:
    """One round: the mirrors, then (with `tokens`) the held tokens and their uses."""
    for refresh in list(_mirrors):
        refresh()
    if tokens:
        _last_tokens[0] = time.monotonic()
        try:
            last_used_write()
            tokens_revalidate()
        finally:
            close_old_connections()


def _tables() -> dict[str, str]:
    from django.contrib.auth import get_user_model

    from aforo.models import ApiToken, Membership, Tenant

    return {"token": ApiToken._meta.db_table, "tenant": Tenant._meta.db_table,
            "member": Membership._meta.db_table, "user": get_user_model()._meta.db_table}


def tokens_revalidate() -> int:
    """Re-validate the tokens used in the last TOKEN_KEEP_S in one query (no ORM: a round must
    not stall on model building); returns how many stay held."""
    from aforo.authentication import forget_token, issuable_roles
    from aforo.models import Role

    now = time.monotonic()
    for token_hash, held in list(_held.items()):
        if now - held.used > TOKEN_KEEP_S:
            _held.pop(token_hash, None)
    hashes = list(_held)
    if not hashes:
        return 0
    t = _tables()
    began = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT k.token_hash, k.id, k.tenant_id, n.slug, k.role, k.expires_at, k.user_id,"
            f" u.is_active, m.role"
            f" FROM {t['token']} k JOIN {t['tenant']} n ON n.id = k.tenant_id"
            f" LEFT JOIN {t['user']} u ON u.id = k.user_id"
            f" LEFT JOIN {t['member']} m ON m.user_id = k.user_id AND m.tenant_id = k.tenant_id"
            f" WHERE k.revoked_at IS NULL AND k.token_hash IN ({', '.join(['%s'] * len(hashes))})",
            hashes)
        rows = cursor.fetchall()
    wall = datetime.now(timezone.utc)
    valid = {}
    for token_hash, pk, tenant_id, slug, role, expires_at, user_id, active, member in rows:
        if isinstance(expires_at, str):  # SQLite without a declared converter
            expires_at = datetime.fromisoformat(expires_at)
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=timezone.utc)
        if expires_at is not None and expires_at <= wall:
            continue
        if user_id is not None and not (
                active and member and Role(role) in issuable_roles(Role(member))):
            continue
        valid[token_hash] = (pk, tenant_id, slug, role, expires_at)
    for token_hash in hashes:
        held = _held.get(token_hash)
        if held is None:
            continue
        row = valid.get(token_hash)
        if row is None:
            forget_token(token_hash)  # dropped here, and the slow path reads it again too
            continue
        held.pk, held.tenant_id, held.tenant_slug, held.role = row[:4]
        held.expires_at = row[4].timestamp() if row[4] is not None else None
        if held.checked < began:
            held.checked = began
    return len(_held)


def last_used_write() -> int:
    """Write the doors' token uses to `last_used_at` in one batch (only where the stored
    value is over LAST_USED_GRANULARITY_S older, as the slow path does); returns how many uses
    were pending. Uses that fail to write are pending again."""
    if not _used:
        return 0
    pending = {}
    for pk in list(_used):
        at = _used.pop(pk, None)
        if at is not None:
            pending[pk] = at
    t = _tables()
    rows = []
    for pk, at in pending.items():
        when = datetime.fromtimestamp(at, timezone.utc)
        rows.append((when, pk, when - timedelta(seconds=LAST_USED_GRANULARITY_S)))
    try:
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {t['token']} SET last_used_at = %s WHERE id = %s"
                f" AND (last_used_at IS NULL OR last_used_at < %s)", rows)
    except Exception:
        for pk, at in pending.items():
            _used[pk] = max(at, _used.get(pk, 0.0))
        raise
    return len(pending)


def forget_all() -> None:
    """Drop every held token and pending use (tests)."""
    _held.clear()
    _used.clear()
