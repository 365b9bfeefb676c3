"""The export's read-ahead: the next chunk read in a thread while this one is encoded gives the
same file as reading them one after the other, holds at most two chunks, fails the export on a
read error, and stops its thread when the download stops."""
from __future__ import annotations

import asyncio
import gzip
import os
import threading
import time
import weakref

import pytest

from aforo import eventstore
from aforo.eventstore import EventStoreError
from exports import queries, readahead
from exports.files import ledger_file
from exports.formats import ExportFormat, gzipped
from exports.streaming import _async_pieces
from tests.exports.conftest import PERIOD, ledger_ids

pytestmark = pytest.mark.django_db


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == readahead.THREAD_NAME]


@pytest.fixture
def one_part(ledger_of_60):
    """The ledger merged into one part: inside a chunk the engine then reads rows in one order
    every time (over several parts, two threads interleave them as they come)."""
    for _ in range(20):  # a merge already under way makes OPTIMIZE return without one
        eventstore.command("OPTIMIZE TABLE ledger FINAL")
        parts = eventstore.query(
            "SELECT count() AS n FROM system.parts WHERE database = currentDatabase() "
            "AND table = 'ledger' AND active AND partition = '202606'")
        if int(parts[0]["n"]) == 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the ledger's June partition did not merge into one part")
    return ledger_of_60


@pytest.fixture
def read_threads(monkeypatch):
    """The names of the threads each chunk read ran on (the real reads, recorded)."""
    names: list[str] = []
    real = queries._read

    def recorded(*args, **kwargs):
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "_read", recorded)
    return names


# 2: chunks cut by keys inside the plan's buckets; 7: buckets grouped; 1000: one chunk
@pytest.mark.parametrize("chunk_rows", [2, 7, 1000])
@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_read_ahead_gives_the_same_file_as_reading_in_turn(one_part, read_threads, fmt,
                                                           chunk_rows):
    tenant = one_part

    def exported(read_ahead: bool) -> bytes:
        return b"".join(ledger_file(tenant=tenant, period=PERIOD, fmt=fmt,
                                    chunk_rows=chunk_rows, read_ahead=read_ahead).content)

    in_turn = exported(False)
    assert set(read_threads) == {threading.current_thread().name}
    read_threads.clear()
    ahead = exported(True)
    assert set(read_threads) == {readahead.THREAD_NAME}  # every chunk read in the thread
    assert len(read_threads) >= max(1, len(ledger_ids(tenant)) // chunk_rows)
    assert ahead == in_turn
    assert not _readers()


def test_gzip_with_read_ahead_is_the_same_file(one_part):
    files = [b"".join(ledger_file(tenant=one_part, period=PERIOD, fmt=ExportFormat.CSV,
                                  chunk_rows=5, gzip=True, read_ahead=ahead).content)
             for ahead in (False, True)]
    assert files[0] == files[1]
    assert gzip.decompress(files[1]).count(b"\n") == 1 + len(ledger_ids(one_part))


def test_a_read_error_fails_the_export_with_that_error(ledger_of_60, monkeypatch):
    real = queries._read
    calls = []

    def third_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise EventStoreError("the store went away mid-export")
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "_read", third_fails)
    pieces = []
    export = ledger_file(tenant=ledger_of_60, period=PERIOD, fmt=ExportFormat.PARQUET,
                         chunk_rows=7)
    with pytest.raises(EventStoreError, match="went away mid-export"):
        for piece in export.content:
            pieces.append(piece)
    assert len(calls) == 3  # nothing read after the failure
    assert len(pieces) == 3  # the header and two chunks; never the footer of a whole file
    assert not _readers()


def test_the_command_fails_on_a_read_error_and_does_not_say_exported(ledger_of_60, tmp_path,
                                                                     monkeypatch, capsys):
    from django.core.management import call_command

    real = queries._read
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise EventStoreError("the store went away mid-export")
        return real(*args, **kwargs)

    monkeypatch.setattr(queries, "_read", second_fails)
    out = tmp_path / "ledger.csv"
    with pytest.raises(EventStoreError):
        call_command("export_ledger", ledger_of_60.slug, "--from", str(PERIOD.first),
                     "--to", str(PERIOD.last), "--output", str(out), "--chunk-rows", "7",
                     "--format", "parquet", "--no-progress")
    assert "Exported" not in capsys.readouterr().err
    assert not _readers()


def test_closing_the_download_early_stops_and_joins_the_thread(ledger_of_60, read_threads):
    export = ledger_file(tenant=ledger_of_60, period=PERIOD, fmt=ExportFormat.CSV,
                         chunk_rows=2, read_ahead=True)
    content = export.content
    while len(read_threads) < 3:  # the header, then chunks, the next one read ahead
        next(content)
    assert len(_readers()) == 1
    content.close()
    assert not _readers()
    # it stopped reading: the period holds more than 30 chunks of 2
    assert len(ledger_ids(ledger_of_60)) > 60 and len(read_threads) < 10


def test_a_client_going_away_under_asgi_stops_the_thread(ledger_of_60, read_threads):
    export = ledger_file(tenant=ledger_of_60, period=PERIOD, fmt=ExportFormat.NDJSON,
                         chunk_rows=2, read_ahead=True)

    async def first_pieces() -> None:
        pieces = _async_pieces(export.content)
        for _ in range(3):
            await anext(pieces)
        assert len(_readers()) == 1
        await pieces.aclose()  # as Django's ASGI handler does when the client is gone

    asyncio.run(first_pieces())
    assert not _readers()


def test_closing_a_gzipped_download_closes_the_stream_under_it():
    closed = threading.Event()

    def source():
        try:
            while True:
                yield os.urandom(1 << 16)  # incompressible: gzip hands out bytes at once
        finally:
            closed.set()

    zipped = gzipped(source())
    next(zipped)
    zipped.close()
    assert closed.is_set()


@pytest.mark.parametrize("fmt", list(ExportFormat))
def test_reading_ahead_is_on_where_encoding_is_work(ledger_of_60, read_threads, store, fmt,
                                                    monkeypatch):
    purges = []
    monkeypatch.setattr(type(store), "purge_freed_memory", lambda self: purges.append(1))
    b"".join(ledger_file(tenant=ledger_of_60, period=PERIOD, fmt=fmt, chunk_rows=2).content)
    writes_itself = store.name == "chdb" and fmt is not ExportFormat.PARQUET
    caller = threading.current_thread().name
    assert set(read_threads) == {caller if writes_itself else readahead.THREAD_NAME}
    assert len(purges) == (len(read_threads) // queries.PURGE_EVERY if writes_itself else 0)


class _Item:
    pass


def test_at_most_two_items_are_held_and_the_source_is_read_in_the_thread():
    alive = [0]
    most = [0]
    threads = set()

    def source():
        for _ in range(20):
            threads.add(threading.current_thread().name)
            item = _Item()
            alive[0] += 1
            most[0] = max(most[0], alive[0])
            weakref.finalize(item, lambda: alive.__setitem__(0, alive[0] - 1))
            yield item
            del item

    for item in readahead.read_ahead(source()):
        time.sleep(0.002)  # the caller's work: the next read runs meanwhile
        del item
    assert threads == {readahead.THREAD_NAME}
    assert 1 <= most[0] <= 2
    assert not _readers()


def test_the_source_is_closed_when_the_caller_stops():
    closed = threading.Event()

    def source():
        try:
            yield from range(100)
        finally:
            closed.set()

    ahead = readahead.read_ahead(source())
    assert next(ahead) == 0
    ahead.close()
    assert closed.is_set()
    assert not _readers()
