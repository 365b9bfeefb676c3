"""Budgets: cost budgets, alert rules, alert history and notification delivery."""
