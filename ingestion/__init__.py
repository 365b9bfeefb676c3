"""Ingestion: event intake, validation, dedupe, cost computation and ledger writes."""
