"""WSGI entry point (management tooling only; Aforo serves over ASGI)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aforo.settings")
application = get_wsgi_application()
