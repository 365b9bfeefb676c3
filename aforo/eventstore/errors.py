"""Errors the event store raises, independent of the backend behind it."""


class EventStoreError(Exception):
    """A query or insert the event store refused (bad SQL, bad data)."""


class EventStoreUnavailable(EventStoreError):
    """The event store cannot be reached right now; the caller may retry later."""


class InsertNotConfirmed(EventStoreUnavailable):
    """A cluster insert failed: a Distributed insert is not atomic across shards, so the
    shards that took their rows hold them (complete, and found by dedupe)."""


class InsertOutcomeUnknown(InsertNotConfirmed):
    """A cluster insert failed in a way that does not say whether a shard wrote its rows (a
    replica died during it, or its quorum timed out): they may be in that shard's ledger,
    unconfirmed, without their read models (aforo.eventstore.unknown_writes)."""


class EmbeddedStoreLocked(EventStoreUnavailable):
    """Another process holds the embedded (chdb) store's directory."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"The embedded event store at {path} is already open in another Aforo process. "
            "Stop that process (the running `make demo` server), or set CLICKHOUSE_URL to "
            "use a ClickHouse server."
        )
        self.path = path
