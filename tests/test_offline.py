"""Reading capture files ahead of the pipeline (fpc.offline.read_ahead)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fpc.errors import CorruptCapture
from fpc.offline import READ_AHEAD, read_ahead


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fpc-read-ahead"]


def test_read_ahead_keeps_the_order_of_the_batches():
    assert list(read_ahead(iter(range(100)))) == list(range(100))  # type: ignore[arg-type]
    assert not _reader_threads()


def test_read_ahead_raises_the_readers_error_after_the_batches_before_it():
    def damaged() -> Iterator[int]:
        yield 1
        yield 2
        raise CorruptCapture("x.pcap", 40, "the file ends inside the last record")

    got = []
    with pytest.raises(CorruptCapture, match="x.pcap"):
        for item in read_ahead(damaged()):  # type: ignore[arg-type]
            got.append(item)
    assert got == [1, 2]
    assert not _reader_threads()


def test_read_ahead_stopped_early_ends_its_thread_and_reads_little_more():
    taken = []

    def endless() -> Iterator[int]:
        n = 0
        while True:
            taken.append(n)
            yield n
            n += 1

    batches = read_ahead(endless())  # type: ignore[arg-type]
    assert next(batches) == 0
    batches.close()
    assert not _reader_threads()
    # the queue bounds what was read past the one taken
    assert len(taken) <= READ_AHEAD + 2
