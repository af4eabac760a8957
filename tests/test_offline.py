"""Reading capture files for the pipeline (fpc.offline): read-ahead, listed sizes."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import dpkt
import pytest

from fpc.config import Config
from fpc.errors import CorruptCapture
from fpc.offline import READ_AHEAD, list_with_sizes, read_ahead, read_files
from fpc.packets import PacketBatch


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


class _Collect:
    """Stands in for the pipeline: keeps the packets it is given."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def process(self, batch: PacketBatch) -> None:
        self.packets += [batch.packet(i) for i in range(len(batch))]


def test_read_files_listed_reads_each_file_up_to_its_listed_size(tmp_path):
    path = tmp_path / "a.pcap"
    with path.open("wb") as fh:
        out = dpkt.pcap.Writer(fh, snaplen=65535)
        for i in range(20):
            out.writepkt(bytes([i]) * 60, ts=1_600_000_000 + i)
    listed = list_with_sizes([str(tmp_path)], recursive=False)
    assert listed == [(str(path), 24 + 20 * 76)]
    with path.open("ab") as fh:  # the file grows after it was listed
        fh.write(b"\0" * 16 + bytes(60))
    got = _Collect()
    errors = read_files(got, [], False, Config(), threading.Event(), listed=listed)  # type: ignore[arg-type]
    assert errors == 0
    assert got.packets == [bytes([i]) * 60 for i in range(20)]
