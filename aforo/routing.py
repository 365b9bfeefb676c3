"""WebSocket routes: the console's live ledger."""
from django.urls import path

from cogs.consumers import LiveLedgerConsumer

websocket_urlpatterns: list = [
    path("ws/console/ledger/", LiveLedgerConsumer.as_asgi()),
]
