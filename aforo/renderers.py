"""A JSON renderer for large read responses: msgspec's encoder, Decimals as exact JSON numbers.

DRF's own renderer goes through the json module (slow for a megabyte of rows) and turns a
Decimal into a string or a float. This one writes a Decimal's digits as a JSON number, so a
money figure quantized to 6 decimals reaches the client without ever being a float.
"""
from __future__ import annotations

from typing import Any

import msgspec
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

_DRF_ENCODER = JSONEncoder()


def _fallback(value: Any) -> Any:
    # str subclasses (DRF's ErrorDetail, lazy translations once forced) are plain strings;
    # anything else msgspec does not know goes through DRF's own rules.
    if isinstance(value, str):
        return str(value)
    return _DRF_ENCODER.default(value)


_ENCODER = msgspec.json.Encoder(decimal_format="number", enc_hook=_fallback)


class ExactJSONRenderer(renderers.JSONRenderer):
    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return _ENCODER.encode(data)
