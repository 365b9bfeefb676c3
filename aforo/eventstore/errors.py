"""Errors the event store raises, independent of the backend behind it."""
from __future__ import annotations

from dataclasses import dataclass


class EventStoreError(Exception):
    """A query or insert the event store refused (bad SQL, bad data)."""


class EventStoreUnavailable(EventStoreError):
    """The event store cannot be reached right now; the caller may retry later."""


class InsertNotConfirmed(EventStoreUnavailable):
    """A cluster insert failed: a Distributed insert is not atomic across shards, so the
    shards that took their rows hold them (complete, and found by dedupe)."""


@dataclass(frozen=True)
class FeedStop:
    """Where a shard stopped feeding the ledger's materialized views for one block.

    ClickHouse 18.16 writes a block to the ledger first, then feeds its views one at a time in
    name order, and stops at the first that fails: views before `view` hold the block, views
    after it do not, and `view` itself holds it when `wrote` (its own write committed on the
    replica, e.g. a quorum wait that timed out). `node` ("host:port") is the replica that
    raised, which names the shard. `view` is COMPLETE when every view was fed.
    """

    node: str
    view: str
    wrote: bool

    COMPLETE = "~"  # sorts after every view name: all of them were fed

    def encode(self) -> str:
        return f"{self.node}|{self.view}|{int(self.wrote)}"

    @classmethod
    def decode(cls, text: str) -> FeedStop | None:
        parts = text.split("|")
        if len(parts) != 3:
            return None
        return cls(parts[0], parts[1], parts[2] == "1")

    def fed(self, view: str) -> bool:
        """Whether this block is in `view` (a view fed by the same shard)."""
        return view < self.view or (view == self.view and self.wrote)


class InsertOutcomeUnknown(InsertNotConfirmed):
    """A cluster insert failed: a shard may have written its rows to the ledger and fed some of
    its views or none (a replica died during it, its quorum timed out, a view's write failed):
    they may be in that shard's ledger, unconfirmed, with some read models missing
    (aforo.eventstore.unknown_writes). `stop` says where feeding stopped when the error names
    the view."""

    def __init__(self, message: str, stop: FeedStop | None = None) -> None:
        super().__init__(message)
        self.stop = stop


class EmbeddedStoreLocked(EventStoreUnavailable):
    """Another process holds the embedded (chdb) store's directory."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"The embedded event store at {path} is already open in another Aforo process. "
            "Stop that process (the running `make demo` server), or set CLICKHOUSE_URL to "
            "use a ClickHouse server."
        )
        self.path = path
