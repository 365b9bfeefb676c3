"""How our authentication appears in the OpenAPI schema (drf-spectacular extensions)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "aforo.authentication.BearerTokenAuthentication"
    name = ["bearer", "tenant"]

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer",
             "description": "An API token from `manage.py create_api_token`."},
            {"type": "apiKey", "in": "header", "name": "X-Tenant-Id",
             "description": "The tenant the call acts on."},
        ]


class TenantSessionScheme(OpenApiAuthenticationExtension):
    target_class = "aforo.authentication.TenantSessionAuthentication"
    name = "session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
