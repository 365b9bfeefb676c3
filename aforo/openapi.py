"""How our authentication appears in the OpenAPI schema (drf-spectacular extensions)."""
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers


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


class DecimalFieldScheme(OpenApiSerializerFieldExtension):
    """Any other decimal that is read or written as a JSON number: a number of its declared
    places, never a float format (a field that writes a string keeps drf-spectacular's
    string). MoneyField's own scheme comes first."""

    target_class = "rest_framework.fields.DecimalField"
    match_subclasses = True
    priority = -1

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        if direction == "response" and field.coerce_to_string:
            return auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        schema = {"type": "number"}
        if field.decimal_places is not None:
            schema["description"] = f"at most {field.decimal_places} decimals"
        if direction == "request" and field.max_digits is not None:
            bound = 10 ** (field.max_digits - field.decimal_places)
            schema.update(minimum=field.min_value if field.min_value is not None else -bound,
                          maximum=field.max_value if field.max_value is not None else bound)
        return schema


class BoundedListSerializerScheme(OpenApiSerializerFieldExtension):
    """A nested `Item(many=True, max_length=N)` keeps its caps in the schema (maxItems)."""

    target_class = "rest_framework.serializers.ListSerializer"
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = auto_schema._map_serializer_field(self.target, direction,
                                                   bypass_extensions=True)
        if self.target.max_length is not None:
            schema["maxItems"] = self.target.max_length
        if self.target.min_length is not None:
            schema["minItems"] = self.target.min_length
        return schema


class BoundedDictFieldScheme(OpenApiSerializerFieldExtension):
    target_class = "aforo.limits.BoundedDictField"

    def map_serializer_field(self, auto_schema, direction):
        child = auto_schema._map_serializer_field(self.target.child, direction)
        return {"type": "object", "additionalProperties": child,
                "maxProperties": self.target.max_items}


# --- the error shape, declared once and applied to every operation --------------------------

class ErrorDetailOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, help_text="The input at fault, if one is.")
    part = serializers.ChoiceField(
        choices=["eventStore", "redis", "database"], required=False,
        help_text="On a 503: the part that is down, as /healthz names it.")


@extend_schema_serializer(component_name="Error")
class ErrorOut(serializers.Serializer):
    """Every API error: {"error": {"code", "message", "field"}}."""

    error = ErrorDetailOut()


ERROR = ErrorOut
_METHODS = ("get", "put", "post", "patch", "delete")
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_STATUSES = {
    "400": "Bad input; `field` names it",
    "401": "No token, or a bad, expired or revoked one",
    "403": "No X-Tenant-Id, or no role in that tenant that may do this",
    "404": "No such object in this tenant",
    "413": "The body is over the cap",
    "415": "The body is not JSON (or not the content type declared)",
    "503": ("A part (the event store, Redis, the database) is unavailable; `part` names "
            "it. Nothing was written, except where `message` says a cluster could not confirm "
            "an event write; retry (Retry-After)"),
}


def _error_statuses(path: str, operation: dict) -> list[str]:
    """Which errors an operation can answer, from its shape: every secured one 401/403 and
    503; with parameters or a body 400; with path parameters 404; with a body 413 and 415."""
    statuses = ["503"]
    if operation.get("security") != [{}] and operation.get("security", True):
        statuses += ["401", "403"]
    if operation.get("parameters") or operation.get("requestBody") or "{" in path:
        statuses.append("400")
    if "{" in path:
        statuses.append("404")
    if operation.get("requestBody"):
        statuses += ["413", "415"]
    return statuses


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the shared error responses on every operation of
    /api/ and /v1/, so an endpoint added anywhere documents them without repeating them."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message", "field"],
                                 "properties": {
                                     "code": {"type": "string"},
                                     "message": {"type": "string"},
                                     "field": {"type": "string", "nullable": True},
                                     "part": {"type": "string",
                                              "enum": ["eventStore", "redis", "database"],
                                              "description": "On a 503: the part that is "
                                                             "down (as /healthz names it)"}}}}})
    for path, item in result.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in _error_statuses(path, operation):
                responses.setdefault(status, {
                    "description": ERROR_STATUSES[status],
                    "content": {"application/json": {"schema": _ERROR_REF}}})
    return result
