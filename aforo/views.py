"""Error pages: JSON for the API, plain pages elsewhere."""
from django.http import HttpResponseNotFound, HttpResponseServerError

from aforo.errors import json_error


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return json_error(404, "not_found", "Not found.")
    return HttpResponseNotFound("<h1>Not found</h1>")


def server_error(request):
    if request.path.startswith("/api/"):
        return json_error(500, "server_error", "Internal error; it has been logged.")
    return HttpResponseServerError("<h1>Server error</h1>")
