"""The ledger above the event store: the shape of its entries, and the one query builder that
reads it and its read models (`aforo.ledger.query`)."""
from aforo.ledger.entries import (
    EVENT_DIMENSIONS,
    LEDGER_COLUMNS,
    LEDGER_DEFAULTS,
    ledger_append,
    ledger_entry,
)

__all__ = ["EVENT_DIMENSIONS", "LEDGER_COLUMNS", "LEDGER_DEFAULTS", "ledger_append", "ledger_entry"]
