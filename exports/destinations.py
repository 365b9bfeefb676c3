"""Where scheduled exports deliver: a signed webhook, a PostgreSQL table or a ClickHouse table.

Every destination is idempotent, so a chunk delivered twice (a run killed after the chunk
landed and before its watermark was saved) is held once:
- a table is keyed by entry_id: PostgreSQL inserts `ON CONFLICT (entry_id) DO NOTHING`;
  ClickHouse inserts only the entry ids the table does not hold yet (and the table is a
  ReplacingMergeTree on entry_id besides);
- a webhook chunk carries an id derived from its entries (`X-Aforo-Delivery`), the same when
  it is sent again, and every line its entry_id, so a receiver deduplicates on either.

DSN hosts follow the outbound rules (public addresses unless the operator allows a host in
AFORO_OUTBOUND_ALLOWED_HOSTS), and a DSN naming Aforo's own databases is refused.
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings

from aforo import outbound
from aforo.errors import DomainError
from aforo.eventstore import EventStoreError, ServerStore
from exports.formats import Column, NdjsonEncoder

WEBHOOK_ATTEMPTS = 3
WEBHOOK_BACKOFF_S = 1.0
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class DestinationError(DomainError):
    """A destination that cannot be used or did not take a chunk; the run records it."""


def table_name_checked(name: str) -> str:
    if not _TABLE.match(name or ""):
        raise DestinationError("The table name must be letters, digits and underscores "
                               "(up to 63, not starting with a digit).", field="table_name")
    return name


class Destination(Protocol):
    def prepare(self, columns: Sequence[Column]) -> None: ...

    def deliver(self, chunk_id: str, columns: Sequence[Column],
                rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self) -> None: ...


# --- DSNs ---------------------------------------------------------------------------------

def _dsn_parts(dsn: str, schemes: tuple[str, ...]) -> tuple[str, str, int, str]:
    """(scheme, host, port, database) of a DSN; DestinationError naming what is wrong."""
    try:
        parts = urlsplit(dsn)
        port = parts.port
    except ValueError:
        raise DestinationError("The DSN cannot be parsed.", field="destination") from None
    if parts.scheme not in schemes:
        raise DestinationError(f"The DSN must start with {' or '.join(s + '://' for s in schemes)}",
                               field="destination")
    if not parts.hostname:
        raise DestinationError("The DSN has no host.", field="destination")
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise DestinationError("The DSN names no database.", field="destination")
    default = 5432 if parts.scheme.startswith("postgres") else 9000
    return parts.scheme, parts.hostname.lower(), port or default, database


def _same_place(a: tuple[str, int, str], b: tuple[str, int, str]) -> bool:
    import socket

    def addresses(host: str, port: int) -> set[str]:
        try:
            return {info[4][0] for info in socket.getaddrinfo(host, port)}
        except OSError:
            return {host}

    return a[1:] == b[1:] and bool(addresses(a[0], a[1]) & addresses(b[0], b[1]))


def _own_databases() -> list[tuple[str, int, str]]:
    own = []
    db = settings.DATABASES["default"]
    if "postgresql" in db.get("ENGINE", ""):
        own.append((db.get("HOST") or "localhost", int(db.get("PORT") or 5432), db["NAME"]))
        test_name = (db.get("TEST") or {}).get("NAME")
        if test_name:
            own.append((db.get("HOST") or "localhost", int(db.get("PORT") or 5432), test_name))
    if settings.CLICKHOUSE_URL:
        _s, host, port, database = _dsn_parts(settings.CLICKHOUSE_URL,
                                              ("clickhouse", "clickhouses"))
        own.append((host, port, database))
    return own


def dsn_checked(dsn: str, kind: str) -> str:
    """A DSN a schedule may deliver to: its form, and not one of Aforo's own databases."""
    schemes = ("postgres", "postgresql") if kind == "POSTGRES" else ("clickhouse", "clickhouses")
    _scheme, host, port, database = _dsn_parts(dsn, schemes)
    for own in _own_databases():
        if _same_place((host, port, database), own):
            raise DestinationError("The DSN names one of Aforo's own databases; export to "
                                   "another database.", field="destination")
    return dsn


def _pinned(host: str, port: int) -> str:
    """The address to connect to, checked as every outbound request is (aforo.outbound)."""
    try:
        return outbound.pinned_address(outbound.Target("https", host, port, "/"))
    except outbound.OutboundError as exc:
        raise DestinationError(str(exc), field="destination") from None


# --- PostgreSQL ---------------------------------------------------------------------------

def _pg_type(column: Column) -> str:
    if column.kind == "decimal":
        from exports.formats import _decimal_shape

        precision, scale = _decimal_shape(column.ch_type)
        return f"numeric({precision}, {scale})"
    if column.kind == "datetime":
        return "timestamptz"
    if column.kind == "date":
        return "date"
    if column.kind == "int":
        return "numeric(20, 0)" if column.ch_type == "UInt64" else "bigint"
    return "text"


class PostgresTable:
    def __init__(self, dsn: str, table: str) -> None:
        import psycopg

        dsn_checked(dsn, "POSTGRES")
        _scheme, host, port, _database = _dsn_parts(dsn, ("postgres", "postgresql"))
        self.table = table_name_checked(table)
        try:
            self.connection = psycopg.connect(dsn, hostaddr=_pinned(host, port),
                                              connect_timeout=5, autocommit=False)
        except psycopg.Error as exc:
            raise DestinationError(f"Cannot connect to PostgreSQL: {exc}".strip(),
                                   field="destination") from None

    def prepare(self, columns: Sequence[Column]) -> None:
        from psycopg import sql

        ddl = sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (entry_id))").format(
            sql.Identifier(self.table),
            sql.SQL(", ").join(sql.SQL("{} {} NOT NULL").format(
                sql.Identifier(c.name), sql.SQL(_pg_type(c))) for c in columns))

        def create_and_catch_up(cur) -> None:
            cur.execute(ddl)
            # A table made before a migration added a ledger column gains it (empty on the
            # rows delivered before), so the next chunk's COPY names only columns it has.
            cur.execute("SELECT column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND table_name = %s",
                        (self.table,))
            held = {row[0] for row in cur.fetchall()}
            for c in columns:
                if c.name not in held:
                    cur.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        sql.Identifier(self.table), sql.Identifier(c.name),
                        sql.SQL(_pg_type(c))))

        self._run(create_and_catch_up)

    def deliver(self, chunk_id: str, columns: Sequence[Column],
                rows: Sequence[Sequence[Any]]) -> None:
        from psycopg import sql

        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        stage = sql.Identifier(f"_aforo_stage_{self.table}"[:63])

        def load(cur) -> None:
            cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(
                stage, sql.Identifier(self.table)))
            with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, names)) as copy:
                for row in rows:
                    copy.write_row(row)
            # Idempotent: an entry delivered before (a chunk sent again) is kept as it was.
            cur.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} "
                                "ON CONFLICT (entry_id) DO NOTHING").format(
                sql.Identifier(self.table), names, names, stage))

        self._run(load)

    def _run(self, work) -> None:
        import psycopg

        try:
            with self.connection.cursor() as cur:
                work(cur)
            self.connection.commit()
        except psycopg.Error as exc:
            self.connection.rollback()
            raise DestinationError(f"PostgreSQL refused the chunk: {exc}".strip()) from None

    def close(self) -> None:
        self.connection.close()


# --- ClickHouse ---------------------------------------------------------------------------

class ClickHouseTable:
    def __init__(self, dsn: str, table: str) -> None:
        dsn_checked(dsn, "CLICKHOUSE")
        scheme, host, port, database = _dsn_parts(dsn, ("clickhouse", "clickhouses"))
        self.table = table_name_checked(table)
        parts = urlsplit(dsn)
        credentials = ""
        if parts.username:
            credentials = quote(unquote(parts.username), safe="")
            if parts.password:
                credentials += ":" + quote(unquote(parts.password), safe="")
            credentials += "@"
        address = _pinned(host, port)
        address = f"[{address}]" if ":" in address else address
        self.store = ServerStore(f"{scheme}://{credentials}{address}:{port}/{database}")

    def _call(self, work):
        try:
            return work()
        except EventStoreError as exc:
            raise DestinationError(f"ClickHouse refused the chunk: {exc}") from None

    def prepare(self, columns: Sequence[Column]) -> None:
        ddl = ", ".join(f"{c.name} {c.ch_type}" for c in columns)

        def create() -> None:
            self.store.ensure_database()
            # :TRICKY: ReplacingMergeTree collapses duplicates only when parts merge; the
            # insert below never writes one, this is the second line of defence.
            self.store.command(f"CREATE TABLE IF NOT EXISTS {self.table} ({ddl}) "
                               "ENGINE = ReplacingMergeTree ORDER BY entry_id")
            # A table made before a migration added a ledger column gains it (its default on
            # the rows delivered before).
            held = {r["name"] for r in self.store.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() "
                "AND table = %(table)s", {"table": self.table})}
            for c in columns:
                if c.name not in held:
                    self.store.command(f"ALTER TABLE {self.table} ADD COLUMN {c.name} {c.ch_type}")

        self._call(create)

    def deliver(self, chunk_id: str, columns: Sequence[Column],
                rows: Sequence[Sequence[Any]]) -> None:
        names = [c.name for c in columns]
        at = names.index("entry_id")

        def insert() -> None:
            ids = tuple(row[at] for row in rows)
            held = {r["entry_id"] for r in self.store.query(
                f"SELECT entry_id FROM {self.table} WHERE entry_id IN %(ids)s", {"ids": ids})}
            fresh = [dict(zip(names, row, strict=True)) for row in rows if row[at] not in held]
            if fresh:
                self.store.insert(self.table, fresh)

        self._call(insert)

    def close(self) -> None:
        self.store.close()


# --- webhook ------------------------------------------------------------------------------

class Webhook:
    def __init__(self, url: str, signing_secret: str) -> None:
        if not signing_secret:
            raise DestinationError("This webhook has no signing secret; rotate one.")
        self.url, self.secret = url, signing_secret
        self.encoder: NdjsonEncoder | None = None

    def prepare(self, columns: Sequence[Column]) -> None:
        self.encoder = NdjsonEncoder(columns)

    def deliver(self, chunk_id: str, columns: Sequence[Column],
                rows: Sequence[Sequence[Any]]) -> None:
        assert self.encoder is not None
        body = self.encoder.rows(rows)
        headers = {"Content-Type": "application/x-ndjson", "X-Aforo-Entries": str(len(rows))}
        for attempt in range(1, WEBHOOK_ATTEMPTS + 1):
            try:
                outbound.post(self.url, body, headers, signing_secret=self.secret,
                              delivery_id=chunk_id)
                return
            except outbound.DestinationRefused as exc:
                raise DestinationError(f"Webhook refused: {exc}") from None
            except outbound.OutboundError as exc:
                if attempt == WEBHOOK_ATTEMPTS:
                    raise DestinationError(f"The webhook did not take the chunk after "
                                           f"{attempt} attempts: {exc.history}.") from None
                time.sleep(WEBHOOK_BACKOFF_S * 2 ** (attempt - 1))

    def close(self) -> None:
        pass


def destination_open(*, kind: str, destination: str, table_name: str,
                     signing_secret: str) -> Destination:
    if kind == "WEBHOOK":
        return Webhook(destination, signing_secret)
    if kind == "POSTGRES":
        return PostgresTable(destination, table_name)
    if kind == "CLICKHOUSE":
        return ClickHouseTable(destination, table_name)
    raise DestinationError(f"Unknown destination kind {kind}.", field="kind")
