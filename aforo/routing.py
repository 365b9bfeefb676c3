"""WebSocket routes; the console issue adds the live ledger consumer here."""
websocket_urlpatterns: list = []
