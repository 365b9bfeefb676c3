"""Errors the event store raises, independent of the backend behind it."""


class EventStoreError(Exception):
    """A query or insert the event store refused (bad SQL, bad data)."""


class EventStoreUnavailable(EventStoreError):
    """The event store cannot be reached right now; the caller may retry later."""


class EmbeddedStoreLocked(EventStoreUnavailable):
    """Another process holds the embedded (chdb) store's directory."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"The embedded event store at {path} is already open in another Aforo process. "
            "Stop that process (the running `make demo` server), or set CLICKHOUSE_URL to "
            "use a ClickHouse server."
        )
        self.path = path
