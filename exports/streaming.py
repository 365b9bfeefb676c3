"""A download streamed chunk by chunk under both WSGI and ASGI, never buffered whole."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse

from exports.files import ExportFile

_END = object()


async def _async_pieces(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    # :TRICKY: under ASGI Django reads a synchronous iterator into a list before sending
    # (the whole export in memory); each chunk is produced in a worker thread instead.
    try:
        while True:
            piece = await sync_to_async(next, thread_sensitive=False)(pieces, _END)
            if piece is _END:
                return
            yield piece
    finally:
        # A client that goes away closes this iterator: close the export's too, off the event
        # loop (closing it joins the thread reading ahead, once its read under way is done).
        await sync_to_async(_close, thread_sensitive=False)(pieces)


def _close(pieces: Iterator[bytes]) -> None:
    close = getattr(pieces, "close", None)
    if close is None:
        return
    try:
        close()
    except ValueError:  # still inside a next() that was abandoned; it is closed when dropped
        pass


def streamed(request, export: ExportFile) -> StreamingHttpResponse:
    raw = getattr(request, "_request", request)
    content = _async_pieces(export.content) if isinstance(raw, ASGIRequest) else export.content
    response = StreamingHttpResponse(content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    if export.gzip:
        # The file itself is gzip (a .gz download), not a transfer encoding.
        response["Content-Type"] = "application/gzip"
    response["X-Content-Type-Options"] = "nosniff"
    return response
