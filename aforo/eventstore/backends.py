"""The two event-store backends: chdb in-process and a ClickHouse server via clickhouse-driver."""
from __future__ import annotations

import atexit
import functools
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import msgspec

from aforo.eventstore.errors import (
    EmbeddedStoreLocked,
    EventStoreError,
    EventStoreUnavailable,
    FeedStop,
    InsertOutcomeUnknown,
)
from aforo.eventstore.escaping import render

Row = dict[str, Any]
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Money goes in as Decimal: a float has already lost digits, so every write path refuses one.
_FLOATS_REFUSED = "floats are not accepted by the event store; use Decimal"


def _identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


class EventStore:
    """The interface every caller uses: query (rows as dicts) or rows (column names and tuples,
    for results of many rows), insert (dict rows), command."""

    name = "abstract"
    database = "aforo"
    cluster = ""  # a ClickHouse cluster's name: tables are Replicated* behind Distributed ones

    def rows(self, sql: str, params: Mapping[str, Any] | None = None,
             ) -> tuple[list[str], list[tuple]]:
        raise NotImplementedError

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        names, rows = self.rows(sql, params)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        columns, cells = _dict_columns(rows)
        return self._insert_columns(table, columns, cells, uniform=False)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    ) -> int:
        """Rows as tuples in `columns` order, for bulk loads (a million-row cost file) where a
        dict per row and a per-cell type test show; a column's cells share one type."""
        if not rows:
            return 0
        return self._insert_columns(table, columns, _tuple_columns(columns, rows), uniform=True)

    def _insert_columns(self, table: str, columns: Sequence[str], cells: list[list[Any]], *,
                        uniform: bool) -> int:
        """Write `cells` (one list per column); `uniform`: each column's cells share a type."""
        raise NotImplementedError

    # Output formats the engine writes itself (exports stream them as they come); a backend
    # without them gives rows, and the caller encodes.
    native_formats: frozenset[str] = frozenset()

    def formatted(self, sql: str, params: Mapping[str, Any] | None, fmt: str) -> bytes:
        """The result in one of `native_formats`, as the engine writes it."""
        raise NotImplementedError(f"{self.name} writes no {fmt} itself")

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    def ping(self) -> None:
        self.query("SELECT 1 AS ok")

    def close(self) -> None:
        """Release connections; the next call reopens them."""

    def close_thread(self) -> None:
        """Release the connections of the calling thread only (a worker thread that ends)."""

    def purge_freed_memory(self) -> None:
        """Hand memory the engine has freed back to the system (an embedded engine's allocator
        keeps freed pages for reuse; a server's memory is not this process's)."""


# --- chdb ---------------------------------------------------------------------------------

def _cell_type(ch_type: str) -> Any:
    """The Python type msgspec decodes a JSONCompact cell of this ClickHouse type into."""
    if ch_type.startswith("Nullable("):
        return _cell_type(ch_type[len("Nullable("):-1]) | None
    if ch_type.startswith("LowCardinality("):
        return _cell_type(ch_type[len("LowCardinality("):-1])
    if ch_type.startswith("Array("):
        return list[_cell_type(ch_type[len("Array("):-1])]
    if ch_type.startswith("DateTime"):
        return datetime  # written as ISO 8601 in UTC with a Z (see _open), so tz-aware
    if ch_type.startswith("Date"):
        return date
    # Decimals (and floats) are decoded from the exact digits of the JSON number.
    if ch_type.startswith("Decimal"):
        return Decimal
    if ch_type.startswith("Float"):
        return Decimal | None  # ClickHouse writes nan and inf as null
    if ch_type.startswith(("Int", "UInt")):
        return int
    if ch_type.startswith(("String", "FixedString", "Enum", "UUID")):
        return str
    return Any


class _Column(msgspec.Struct):
    name: str
    type: str


class _Meta(msgspec.Struct):
    meta: list[_Column]


@functools.lru_cache(maxsize=512)
def _result_decoder(types: tuple[str, ...]) -> msgspec.json.Decoder:
    row = tuple[tuple(_cell_type(t) for t in types)] if types else tuple
    document = msgspec.defstruct("Result", [("data", list[row])])
    # strict=False: 64-bit integers may come quoted ("123"), as ClickHouse writes them by default.
    return msgspec.json.Decoder(document, strict=False)


_META_DECODER = msgspec.json.Decoder(_Meta)


def _json_cell(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        raise TypeError(_FLOATS_REFUSED)
    return value


_COMPACT_ENCODER = msgspec.json.Encoder()


def _fixed(value: Any) -> str:
    if type(value) is not Decimal:
        raise TypeError(f"a Decimal column holds {type(value).__name__}; floats are refused")
    return format(value, "f")


def _utc_text_cached() -> Callable[[Any], str]:
    seen: dict[datetime, str] = {}

    def convert(value: Any) -> str:
        text = seen.get(value)
        if text is None:
            text = _json_cell(value)
            if len(seen) < 100_000:
                seen[value] = text
        return text

    return convert


def _dict_columns(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Dict rows (each with the first row's keys) as column names and one list per column."""
    columns = list(rows[0].keys())
    return columns, [[row[c] for row in rows] for c in columns]


def _tuple_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    if any(len(row) != len(columns) for row in rows):
        raise ValueError("every row has a cell per column")
    return [list(cells) for cells in zip(*rows, strict=True)]


def _one_type(cells: list[Any]) -> type | None:
    """The type every cell of a column has, or None when they differ."""
    first = type(cells[0])
    return first if all(type(v) is first for v in cells) else None


def _column_kind(cells: list[Any], *, uniform: bool) -> type | None:
    """The type of a column's cells (None when they differ), a column of floats refused.
    `uniform`: the caller promises every cell has the first one's type (bulk loads)."""
    kind = type(cells[0]) if uniform else _one_type(cells)
    if kind is float:
        raise TypeError(_FLOATS_REFUSED)
    return kind


def _chdb_column(cells: list[Any], *, uniform: bool) -> list[Any]:
    """A column's cells as JSON values for chdb: Decimals fixed-point (never `1E-9`), times as
    UTC text (each distinct moment rendered once), dates ISO; strings and integers as they are."""
    kind = _column_kind(cells, uniform=uniform)
    if kind is None:
        return [_json_cell(v) for v in cells]
    if kind is Decimal:
        return [_fixed(v) for v in cells]
    if kind is datetime:
        return list(map(_utc_text_cached(), cells))
    if kind is date:
        return [v.isoformat() for v in cells]
    return cells


def _server_column(cells: list[Any], *, uniform: bool) -> list[Any]:
    """A column's cells for clickhouse-driver: aware datetimes as naive UTC (each distinct
    moment converted once); floats refused; the rest as they are."""
    kind = _column_kind(cells, uniform=uniform)
    if kind is None:
        return [_server_cell(v) for v in cells]
    if kind is datetime:
        seen: dict[datetime, datetime] = {}
        out = []
        for value in cells:
            converted = seen.get(value)
            if converted is None:
                converted = seen[value] = _server_cell(value)
            out.append(converted)
        return out
    return cells


@contextmanager
def _stderr_captured() -> Iterator[Callable[[], str]]:
    """Catch what native code writes to fd 2 (chdb prints its errors there before raising)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: (sink.seek(0), sink.read().decode(errors="replace"))[1]
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class ChdbStore(EventStore):
    """ClickHouse in this process (chdb); its directory belongs to one process at a time."""

    name = "chdb"
    # :TRICKY: chdb runs one embedded server per process; a second path cannot be opened
    # while the first is, so remember which one this process holds.
    _open_path: str | None = None

    def __init__(self, path: str, database: str = "aforo") -> None:
        self.path = path
        self.database = database
        self._session = None
        self._lock = threading.RLock()

    def _open(self):
        if self._session is None:
            from chdb import session as chdb_session

            Path(self.path).mkdir(parents=True, exist_ok=True)
            if ChdbStore._open_path not in (None, self.path):
                raise EventStoreError(
                    f"this process already has the embedded store {ChdbStore._open_path} open; "
                    "chdb allows one per process"
                )
            with _stderr_captured() as captured:
                try:
                    sess = chdb_session.Session(self.path)
                except RuntimeError as exc:
                    if "lock" in captured().lower() or "lock" in str(exc).lower():
                        raise EmbeddedStoreLocked(self.path) from exc
                    raise EventStoreError(f"{exc}: {captured().strip()}") from exc
            ChdbStore._open_path = self.path
            # :TRICKY: chdb prints an error at interpreter exit unless its session was closed.
            atexit.register(self.close)
            sess.query(f"CREATE DATABASE IF NOT EXISTS {_identifier(self.database)}")
            sess.query(f"USE {self.database}")
            # DateTimes as 2026-11-23T12:00:00Z: UTC, zone-marked, what msgspec decodes fast.
            sess.query("SET date_time_output_format = 'iso'")
            self._session = sess
        return self._session

    def _run(self, sql: str, fmt: str = "CSV"):
        with self._lock:
            sess = self._open()
            try:
                return sess.query(sql, fmt)
            except Exception as exc:  # chdb raises its own ChdbError/RuntimeError types
                raise EventStoreError(str(exc)) from exc

    def rows(self, sql: str, params: Mapping[str, Any] | None = None,
             ) -> tuple[list[str], list[tuple]]:
        raw = self._run(render(sql, params), "JSONCompact").bytes()
        if not raw:
            return [], []
        # Decoded in C by msgspec into typed tuples, once the column types are known: Decimals
        # from the exact digits ClickHouse writes (never through float), dates and times typed.
        columns = _META_DECODER.decode(raw).meta
        data = _result_decoder(tuple(column.type for column in columns)).decode(raw).data
        return [column.name for column in columns], data

    def _insert_columns(self, table: str, columns: Sequence[str], cells: list[list[Any]], *,
                        uniform: bool) -> int:
        # The values travel as data, never as SQL text, so nothing in them is parsed as SQL:
        # one JSON object of columns (JSONColumns), encoded by msgspec in C in one call.
        document = {name: _chdb_column(column, uniform=uniform)
                    for name, column in zip(columns, cells, strict=True)}
        header = (f"INSERT INTO {_identifier(table)} "
                  f"({', '.join(map(_identifier, columns))}) FORMAT JSONColumns\n")
        self._run(header + _COMPACT_ENCODER.encode(document).decode())
        return len(cells[0])

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        self._run(render(sql, params))

    native_formats = frozenset({"CSV", "CSVWithNames", "JSONEachRow", "ArrowStream"})
    # Money as exact strings in JSON, counts as numbers; the Arrow format keeps Decimal128.
    _FORMAT_SETTINGS = {
        "JSONEachRow": " SETTINGS output_format_json_quote_decimals = 1, "
                       "output_format_json_quote_64bit_integers = 0",
    }

    def formatted(self, sql: str, params: Mapping[str, Any] | None, fmt: str) -> bytes:
        if fmt not in self.native_formats:
            raise ValueError(f"not a native output format: {fmt}")
        # The engine writes the bytes in C; the lock is held for this one query only.
        return self._run(render(sql, params) + self._FORMAT_SETTINGS.get(fmt, ""), fmt).bytes()

    def purge_freed_memory(self) -> None:
        # jemalloc returns the dirty pages of freed allocations to the system. It is not free:
        # the next queries fault those pages in again (once per chunk cost an export 30% more
        # CPU), so callers purge now and then.
        self._run("SYSTEM JEMALLOC PURGE")

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None
                ChdbStore._open_path = None


# --- ClickHouse server --------------------------------------------------------------------

# Session settings on a cluster (docs/eventstore.md, "Running on a cluster"):
# - insert_distributed_sync: an INSERT into a Distributed table returns once every shard has
#   its rows (or fails, and the API answers 503), never queued on the node we talk to where
#   dedupe reads cannot see them;
# - insert_quorum 2: a shard acknowledges a write once both its replicas hold it, so a replica
#   that dies right after cannot take acknowledged events with it, and a dedupe read on the
#   other replica sees them; select_sequential_consistency makes reads see every quorum write;
# - load_balancing in_order: reads and writes go to each shard's first live replica;
# - distributed_product_mode global: an `IN (SELECT ... FROM distributed table)` inside a
#   query over a distributed table (attribution's) runs once and is sent to every shard, not
#   run per shard over that shard's part of the subquery's table.
CLUSTER_SETTINGS: dict[str, Any] = {
    "insert_distributed_sync": 1,
    "insert_quorum": 2,
    "insert_quorum_timeout": 30_000,
    "select_sequential_consistency": 1,
    "load_balancing": "in_order",
    "distributed_product_mode": "global",
}

# Server error codes that mean "the cluster cannot take this write now, nothing was written or
# the write's fate is unknown": TOO_FEW_LIVE_REPLICAS, UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE,
# UNKNOWN_STATUS_OF_INSERT, ALL_CONNECTION_TRIES_FAILED, NO_REPLICA_HAS_PART,
# REPLICA_IS_NOT_IN_QUORUM, ALL_REPLICAS_ARE_STALE, TIMEOUT_EXCEEDED (quorum wait), network errors
# between nodes (NETWORK_ERROR, SOCKET_TIMEOUT, ATTEMPT_TO_READ_AFTER_EOF: a node died while
# the node we talk to was writing to it; POCO_EXCEPTION: connection refused or reset). They
# answer 503 like an unreachable server.
UNAVAILABLE_CODES = frozenset({285, 286, 319, 279, 234, 289, 369, 159, 210, 209, 32, 1000})
# A cluster INSERT that fails leaves its outcome unknown, whatever the code: a shard refuses a
# write before it writes (TOO_FEW_LIVE_REPLICAS, UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE), but the
# same codes come from the quorum write of a materialized view's target, after the ledger's block
# is written (docs/eventstore.md, "Writes whose outcome is unknown"). The codes that a view's own
# write raises before writing:
REFUSED_BEFORE_WRITING = frozenset({285, 286})
_PUSHING_TO = re.compile(r"while pushing to view [^.\s]+\.`?(\w+)`?")
_RECEIVED_FROM = re.compile(r"Received from ([^\s]+?:\d+)\.")
_CODE = re.compile(r"Code: (\d+)")


class ServerStore(EventStore):
    """A ClickHouse server over its native protocol (clickhouse-driver), one client per thread.

    With `cluster`, the tables are the cluster's Distributed ones and every session carries
    CLUSTER_SETTINGS; `alt_hosts` ("host:port,host:port") are other nodes to connect to when
    the first is down.
    """

    name = "server"

    def __init__(self, url: str, cluster: str = "", alt_hosts: str = "") -> None:
        self.cluster = _identifier(cluster) if cluster else ""
        self.alt_hosts = alt_hosts
        parsed = urlparse(url)
        if parsed.scheme not in ("clickhouse", "clickhouses"):
            raise ValueError("CLICKHOUSE_URL must look like clickhouse://user:pass@host:9000/db")
        self.url = url
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 9000
        self.user = unquote(parsed.username or "default")
        self.password = unquote(parsed.password or "")
        self.database = _identifier((parsed.path or "/default").lstrip("/") or "default")
        self.secure = parsed.scheme == "clickhouses"
        self._local = threading.local()
        self._database_ready = False

    def _client(self, database: str | None = None):
        from clickhouse_driver import Client

        key = database or self.database
        clients = self._local.__dict__.setdefault("clients", {})
        if key not in clients:
            clients[key] = Client(
                host=self.host, port=self.port, user=self.user, password=self.password,
                database=key, secure=self.secure, connect_timeout=3,
                send_receive_timeout=60, sync_request_timeout=5,
                settings={"use_numpy": False, **(CLUSTER_SETTINGS if self.cluster else {})},
                **({"alt_hosts": self.alt_hosts} if self.alt_hosts else {}),
            )
        return clients[key]

    def ensure_database(self) -> None:
        """Create the configured database (it must exist before clients can select it)."""
        on_cluster = f" ON CLUSTER {self.cluster}" if self.cluster else ""
        self._execute(f"CREATE DATABASE IF NOT EXISTS {self.database}{on_cluster}",
                      database="default")
        self._database_ready = True

    def _execute(self, sql: str, data=None, *, database: str | None = None, **kwargs):
        from clickhouse_driver import errors as ch_errors

        client = self._client(database)
        try:
            if data is not None:
                return client.execute(sql, data, **kwargs)
            return client.execute(sql, **kwargs)
        except (ch_errors.NetworkError, ch_errors.SocketTimeoutError, EOFError, OSError) as exc:
            client.disconnect()
            raise EventStoreUnavailable(f"ClickHouse at {self.host}:{self.port}: {exc}") from exc
        except ch_errors.ServerException as exc:
            if self.cluster and exc.code in UNAVAILABLE_CODES:
                raise EventStoreUnavailable(
                    f"ClickHouse cluster {self.cluster}: "
                    f"{str(exc).split('Stack trace:')[0].strip()}") from exc
            raise EventStoreError(str(exc).split("Stack trace:")[0].strip()) from exc
        except ch_errors.Error as exc:
            # The server appends its stack trace to the message; keep the message.
            raise EventStoreError(str(exc).split("Stack trace:")[0].strip()) from exc

    def rows(self, sql: str, params: Mapping[str, Any] | None = None,
             ) -> tuple[list[str], list[tuple]]:
        rows, columns = self._execute(render(sql, params), with_column_types=True)
        names = [name for name, _type in columns]
        aware = [i for i, (_n, t) in enumerate(columns)
                 if t.startswith(("DateTime", "Nullable(DateTime"))]
        if not aware:
            return names, rows
        # The driver gives naive datetimes; the ledger's are UTC.
        out = []
        for row in rows:
            cells = list(row)
            for i in aware:
                if isinstance(cells[i], datetime) and cells[i].tzinfo is None:
                    cells[i] = cells[i].replace(tzinfo=timezone.utc)
            out.append(tuple(cells))
        return names, out

    def _insert_columns(self, table: str, columns: Sequence[str], cells: list[list[Any]], *,
                        uniform: bool) -> int:
        # Columnar: the driver serializes each column in one pass (half the time of rows).
        data = [_server_column(column, uniform=uniform) for column in cells]
        sql = f"INSERT INTO {_identifier(table)} ({', '.join(map(_identifier, columns))}) VALUES"
        try:
            self._execute(sql, data, columnar=True)
        except EventStoreError as exc:
            if not self.cluster or not _from_server(exc):
                raise
            connection = self._client().connection
            here = f"{connection.host}:{connection.port}" if connection.host else ""
            raise InsertOutcomeUnknown(f"{exc} (this insert's outcome is unknown)",
                                       stop=feed_stop_parse(str(exc), here)) from exc
        return len(cells[0])

    def command(self, sql: str, params: Mapping[str, Any] | None = None, *,
                settings: Mapping[str, Any] | None = None) -> None:
        """`settings`: this statement's own, over the session's."""
        self._execute(render(sql, params), **({"settings": dict(settings)} if settings else {}))

    def shard_nodes(self) -> list[ServerStore]:
        """A store on the first replica of each shard of the cluster (plain, no cluster
        settings), as system.clusters names them."""
        return [store for _shard, replica, store in self.replica_nodes() if replica == 1]

    def replica_nodes(self) -> list[tuple[int, int, ServerStore]]:
        """(shard number, replica number, a plain store on that node) for every node of the
        cluster, as system.clusters names them."""
        rows = self.query(
            "SELECT shard_num, replica_num, host_address, port FROM system.clusters "
            "WHERE cluster = %(c)s ORDER BY shard_num, replica_num", {"c": self.cluster})
        scheme = "clickhouses" if self.secure else "clickhouse"
        from urllib.parse import quote

        credentials = quote(self.user, safe="")
        if self.password:
            credentials += ":" + quote(self.password, safe="")
        return [(r["shard_num"], r["replica_num"],
                 ServerStore(f"{scheme}://{credentials}@{r['host_address']}:{r['port']}/"
                             f"{self.database}")) for r in rows]

    def close(self) -> None:
        for client in self._local.__dict__.get("clients", {}).values():
            client.disconnect()
        self._local = threading.local()

    def close_thread(self) -> None:
        for client in self._local.__dict__.pop("clients", {}).values():
            client.disconnect()


def _from_server(exc: EventStoreError) -> bool:
    """Whether the error came back from the server or the network (the insert was sent), not
    from the driver refusing to serialize it (nothing sent)."""
    from clickhouse_driver import errors as ch_errors

    return isinstance(exc, EventStoreUnavailable) or isinstance(exc.__cause__,
                                                                ch_errors.ServerException)


def feed_stop_parse(message: str, here: str) -> FeedStop | None:
    """Where a failed cluster insert stopped feeding the ledger's views, from its message
    ("Received from <node>. ... while pushing to view <db>.<view>"); `here` is the node we
    sent it to, which wrote its own shard's part. None when the message names no view."""
    view = _PUSHING_TO.search(message)
    if view is None:
        return None
    node = _RECEIVED_FROM.search(message)
    return FeedStop(node=node.group(1) if node else here, view=view.group(1),
                    wrote=not write_refused(message))


def write_refused(message: str) -> bool:
    """Whether a failed write's error says it was refused before anything was written."""
    return bool({int(c) for c in _CODE.findall(message)} & REFUSED_BEFORE_WRITING)


def _server_cell(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        # :TRICKY: clickhouse-driver writes naive datetimes as given; our columns are UTC.
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    if isinstance(value, float):
        raise TypeError(_FLOATS_REFUSED)
    return value
