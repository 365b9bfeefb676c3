"""OpenAPI description of POST /api/v1/margin-guard/decide (an async view DRF cannot see)."""
from __future__ import annotations

_STR = {"type": "string", "maxLength": 200}
_DECISION = {"type": "object", "properties": {
    "decision": {"type": "string", "enum": ["ALLOW", "THROTTLE", "BLOCK"]},
    "level": {"type": "string", "enum": ["NONE", "ALERT", "THROTTLE", "BLOCK"]},
    "model": {"type": "string", "nullable": True},
    "downgradeTo": {"type": "string", "nullable": True},
    "retryAfter": {"type": "integer", "nullable": True},
    "wouldDecide": {"type": "string", "nullable": True},
    "reason": {"type": "string"},
    "reasonCode": {"type": "string", "nullable": True, "enum": [
        "MARGIN_FLOOR", "ENTITLEMENT_EXCEEDED", "WALLET_EMPTY", "RATE_LIMITED", "OVERRIDE",
        None], "description": "Why the decision is not a plain ALLOW (null when it is)."},
    "remaining": {"type": "array", "description": "Each entitlement of the customer in "
                  "the call's scope, as of the last committed ingest batch.",
                  "items": {"type": "object", "properties": {
                      "entitlementId": {"type": "integer"}, "feature": {"type": "string"},
                      "limit": {"type": "number"}, "usage": {"type": "number"},
                      "remaining": {"type": "number"}}}}}}


def add_decide_path(result, generator, request, public):
    """drf-spectacular postprocessing hook."""
    result["paths"]["/api/v1/margin-guard/decide"] = {"post": {
        "operationId": "margin_guard_decide",
        "summary": "ALLOW, THROTTLE (header X-Aforo-Model-Downgrade) or BLOCK for a call",
        "tags": ["margin-guard"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["customerId"], "properties": {
                "customerId": _STR, "productId": _STR, "model": _STR, "feature": _STR}}}}},
        "responses": {
            "200": {"description": "The decision", "content": {
                "application/json": {"schema": _DECISION}},
                "headers": {"X-Aforo-Model-Downgrade": {"schema": {"type": "string"},
                            "description": "The cheaper model to use (THROTTLE)"}}},
            "429": {"description": "Past the throttle's rate limit (reasonCode RATE_LIMITED): "
                                   "a THROTTLE decision; retry after Retry-After seconds",
                    "headers": {"Retry-After": {"schema": {"type": "integer"},
                                "description": "Seconds until the next minute's allowance"}},
                    "content": {"application/json": {"schema": _DECISION}}},
            "400": {"description": "Bad input"}, "401": {"description": "No or bad token"},
            "403": {"description": "No tenant or no role"}},
    }}
    return result
