"""How our authentication appears in the OpenAPI schema (drf-spectacular extensions)."""
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)


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


class MoneyFieldScheme(OpenApiSerializerFieldExtension):
    """Money and percentages are JSON numbers: exact decimals, never a float format."""

    target_class = "aforo.money.MoneyField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        bound = 10 ** (field.max_digits - field.decimal_places)
        schema = {"type": "number"}
        if direction == "request":
            low = field.min_value if field.min_value is not None else -bound
            high = field.max_value if field.max_value is not None else bound
            schema.update(minimum=low, maximum=high,
                          description=f"at most {field.decimal_places} decimals")
        else:
            places = -self.target.quantum_out.as_tuple().exponent
            schema["description"] = f"at most {places} decimals"
        return schema


class BoundedDictFieldScheme(OpenApiSerializerFieldExtension):
    target_class = "aforo.limits.BoundedDictField"

    def map_serializer_field(self, auto_schema, direction):
        child = auto_schema._map_serializer_field(self.target.child, direction)
        return {"type": "object", "additionalProperties": child,
                "maxProperties": self.target.max_items}
