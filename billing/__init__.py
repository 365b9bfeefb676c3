"""Billing: rate plans, subscriptions, rated revenue and invoices."""
