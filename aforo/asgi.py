"""ASGI entry point: HTTP through Django, WebSockets through Channels (session-authenticated)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs Django set up first)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from aforo.limits import BodyCeiling  # noqa: E402
from aforo.routing import websocket_urlpatterns  # noqa: E402
from aforo.runtime import freeze_startup_heap  # noqa: E402
from aforo.schedule import start_in_process_schedule  # noqa: E402
from margin_guard.fastpath import DecideFastPath  # noqa: E402

start_in_process_schedule()

# The decision's door first: its calls pass no other layer (it caps its own body, and hands
# everything else, its odd requests included, to the router below).
application = DecideFastPath(ProtocolTypeRouter({
    "http": BodyCeiling(django_asgi_app),
    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
}))
freeze_startup_heap()
