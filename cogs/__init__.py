"""COGS: the read side (analytics queries, attribution, anomalies) and its API and console."""
