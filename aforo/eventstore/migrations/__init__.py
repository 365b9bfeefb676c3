"""Numbered event-store migrations: each module NNNN_name.py defines statements(topology)."""
