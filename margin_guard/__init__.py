"""Margin Guard: margin floors enforced in the request path."""
