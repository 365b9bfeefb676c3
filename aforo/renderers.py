"""The API's JSON renderer: money as exact JSON numbers (aforo.money.json_bytes), never a float.

DRF's own renderer goes through the json module (slow for a megabyte of rows) and turns a
Decimal into a string or a float. This one writes a Decimal's digits as a JSON number, so a
money figure quantized to 6 decimals reaches the client without ever being a float.
"""
from __future__ import annotations

from rest_framework import renderers

from aforo.money import json_bytes


class ExactJSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return json_bytes(data)
