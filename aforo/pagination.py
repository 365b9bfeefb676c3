"""The page envelope of API.md: page (0-based), size (default 25, capped at 200)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from drf_spectacular.utils import OpenApiParameter
from rest_framework import pagination, serializers
from rest_framework.response import Response

from aforo.errors import ApiError

DEFAULT_SIZE = 25
MAX_SIZE = 200
MAX_PAGE = 100_000  # beyond it an offset only overflows the databases (a 400, not a 500)


@dataclass(frozen=True)
class PageRequest:
    page: int
    size: int

    @property
    def offset(self) -> int:
        return self.page * self.size


def int_param(query_params, name: str, *, default: int | None, low: int,
              high: int) -> int | None:
    """An optional whole-number query parameter within [low, high]; `default` when absent,
    400 naming it otherwise."""
    raw = query_params.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} must be an integer.", field=name) from None
    if not low <= value <= high:
        raise ApiError(f"{name} must be between {low} and {high}.", field=name)
    return value


def page_request(query_params) -> PageRequest:
    """Parse page/size; 400 for a non-integer or negative value, size capped at MAX_SIZE."""
    values = {}
    for name, default in (("page", 0), ("size", DEFAULT_SIZE)):
        raw = query_params.get(name, "")
        if raw == "":
            values[name] = default
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise ApiError(f"{name} must be an integer.", field=name) from None
        if values[name] < (0 if name == "page" else 1) or (name == "page"
                                                            and values[name] > MAX_PAGE):
            raise ApiError(f"{name} is out of range.", field=name)
    return PageRequest(page=values["page"], size=min(values["size"], MAX_SIZE))


def envelope(content: list, request: PageRequest, total: int) -> dict:
    return {
        "content": content,
        "page": request.page,
        "size": request.size,
        "totalElements": total,
        "totalPages": math.ceil(total / request.size) if total else 0,
    }


class PageEnvelopePagination(pagination.BasePagination):
    """DRF pagination for querysets, producing the same envelope."""

    def paginate_queryset(self, queryset, request, view=None):
        self.page = page_request(request.query_params)
        self.total = queryset.count()
        return list(queryset[self.page.offset:self.page.offset + self.page.size])

    def get_paginated_response(self, data):
        return Response(envelope(list(data), self.page, self.total))

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["content", "page", "size", "totalElements", "totalPages"],
            "properties": {
                "content": schema,
                "page": {"type": "integer"},
                "size": {"type": "integer"},
                "totalElements": {"type": "integer"},
                "totalPages": {"type": "integer"},
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "page", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE}},
            {"name": "size", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE}},
        ]


def page_rendered(request, queryset, render) -> Response:
    """One page of a queryset in the page envelope, its rows rendered together by `render` (a
    list of rows to a list of JSON objects): for answers a query module builds, not a
    serializer."""
    page = page_request(request.query_params)
    rows = list(queryset[page.offset:page.offset + page.size])
    return Response(envelope(render(rows), page, queryset.count()))


def paged_response(request, queryset, serializer_class, context: dict | None = None, *,
                   load=None) -> Response:
    """One page of a queryset in the page envelope, each row through the serializer; `load`
    reads what the page's rows need in bulk first (e.g. notifications' destinations_load)."""
    paginator = PageEnvelopePagination()
    page = paginator.paginate_queryset(queryset, request)
    if load is not None:
        page = load(page)
    return paginator.get_paginated_response(
        serializer_class(page, many=True, context=context or {}).data)


PAGE_PARAMETERS = [
    OpenApiParameter("page", {"type": "integer", "minimum": 0, "maximum": MAX_PAGE},
                     description="0-based page"),
    OpenApiParameter("size", {"type": "integer", "minimum": 1},
                     description=f"Rows per page (default {DEFAULT_SIZE}, capped at {MAX_SIZE})"),
]
_page_serializers: dict[type, type] = {}


def page_of(serializer_class: type) -> type:
    """The page envelope around `serializer_class` as a serializer, for the OpenAPI schema of
    a list that answers with `paged_response` (component `Paged<Name>`)."""
    from drf_spectacular.utils import extend_schema_serializer

    if serializer_class not in _page_serializers:
        name = _component_name(serializer_class)

        @extend_schema_serializer(component_name=f"Paged{name}")
        class Page(serializers.Serializer):
            content = serializer_class(many=True)
            page = serializers.IntegerField(min_value=0)
            size = serializers.IntegerField(min_value=1, max_value=MAX_SIZE)
            totalElements = serializers.IntegerField(min_value=0)
            totalPages = serializers.IntegerField(min_value=0)

        Page.__name__ = f"Paged{name}"
        _page_serializers[serializer_class] = Page
    return _page_serializers[serializer_class]


def paged(serializer_class: type) -> dict:
    """extend_schema arguments for a paged list: the envelope and the page parameters."""
    return {"responses": page_of(serializer_class), "parameters": PAGE_PARAMETERS}


def _component_name(serializer_class: type) -> str:
    """The name drf-spectacular gives the serializer's component."""
    from drf_spectacular.drainage import get_override

    return get_override(serializer_class, "component_name") or \
        serializer_class.__name__.removesuffix("Serializer")
