"""The live ledger: newly ingested events pushed to the Transactions tab over a WebSocket.

Session-authenticated (Channels' AuthMiddlewareStack) and scoped to the tenant the user is
acting as in the console at connect time; it joins that tenant's group, where
`ingestion.broadcast` sends every accepted event.
"""
from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from aforo.console import TENANT_SESSION_KEY, membership_chosen
from ingestion.broadcast import ledger_group

# Close codes (4000–4999 are the application's): not signed in, no tenant membership.
UNAUTHENTICATED = 4401
NO_MEMBERSHIP = 4403


@database_sync_to_async
def _tenant_slug(user, chosen: str | None) -> str | None:
    membership = membership_chosen(user, chosen)
    return membership.tenant.slug if membership else None


class LiveLedgerConsumer(AsyncJsonWebsocketConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=UNAUTHENTICATED)
            return
        session = self.scope.get("session")
        chosen = session.get(TENANT_SESSION_KEY) if session is not None else None
        slug = await _tenant_slug(user, chosen)
        if slug is None:
            await self.close(code=NO_MEMBERSHIP)
            return
        self.group = ledger_group(slug)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "tenant": slug})

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs) -> None:
        """The stream is one-way; a client message is ignored."""

    async def ledger_events(self, message: dict) -> None:
        await self.send_json({"type": "events", "events": message["events"]})
