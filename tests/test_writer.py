"""PcapWriter and fpc.pcapfile against real corpus captures.

The reference for every comparison is the source capture, read with dpkt and
with the small record parser below (written from the pcap format description,
independent of fpc), and tcpdump must read every file the writer produced.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import dpkt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPUS  # noqa: E402
from fpc.errors import PcapUnavailable, WriterError
from fpc.packets import PRECISION_NS, PRECISION_US, PacketBatch
from fpc.pcapfile import (
    PacketList,
    PacketPlan,
    PcapFileReader,
    make_output,
    pcap_file_header,
    read_packets,
)
from fpc.reader import open_capture
from fpc.ring import PacketRing
from fpc.store import open_store
from fpc.store.base import PcapFile, SessionQuery, Store
from fpc.writer import (
    WRITE_PIECE_BYTES,
    PcapWriter,
    pack_records,
    pack_records_numpy,
    record_span,
)

NODE = "test-node"

# (file, link type, precision); pcap files only, so dpkt gives the link type.
SOURCES = [
    ("other/zeek-smtp.pcap", 1, PRECISION_US),
    ("other/zeek-sll-irc-starttls.pcap", 113, PRECISION_US),
    ("other/zeek-rawip-rotation.pcap", 101, PRECISION_US),
    ("other/tcpdump-tcp-handshake-nano.pcap", 113, PRECISION_NS),
    ("other/tcpdump-pptp-bigendian.pcap", 1, PRECISION_US),
    ("other/suricata-null-loopback-http.pcap", 0, PRECISION_US),
    ("other/zeek-linux-sll2.pcap", 276, PRECISION_US),
    ("other/zeek-communityid-tcp-snap96.pcap", 1, PRECISION_US),
    ("arkime/y2038-bgp.pcap", 1, PRECISION_US),
]


class MemoryStore(Store):
    """A complete in-memory Store: registry rows and SPI records in dicts."""

    def __init__(self) -> None:
        self.last_num: dict[str, int] = {}
        self.files: dict[tuple[str, int], PcapFile] = {}
        self.sessions: dict[str, dict] = {}

    def next_file_num(self, node: str) -> int:
        self.last_num[node] = self.last_num.get(node, 0) + 1
        return self.last_num[node]

    def save_file(self, pcap_file: PcapFile) -> None:
        self.files[(pcap_file.node, pcap_file.file_num)] = pcap_file

    def get_file(self, node: str, file_num: int) -> PcapFile | None:
        return self.files.get((node, file_num))

    def save_sessions(self, records: list[dict]) -> None:
        for r in records:
            self.sessions[r["event"]["id"]] = r

    def get_session(self, session_id: str) -> dict | None:
        return self.sessions.get(session_id)

    def search_sessions(self, query: SessionQuery) -> list[dict]:
        hits = [r for r in self.sessions.values() if _matches(r, query)]
        hits.sort(key=lambda r: (r["event"]["start"], r["event"]["id"]))
        return hits[: query.limit]


def _matches(r: dict, q: SessionQuery) -> bool:
    ends = (r["source"], r["destination"])
    return (
        (q.ip is None or q.ip in (e["ip"] for e in ends))
        and (q.port is None or q.port in (e["port"] for e in ends))
        and (q.node is None or q.node == r["observer"]["name"])
        and (q.protocol is None or q.protocol in r["fpc"]["protocols"])
    )


def read_records(path: str | Path) -> tuple[int, int, list[tuple[int, int, bytes]]]:
    """(linktype, precision, [(ts_ns, wirelen, data)]) of a classic pcap file."""
    raw = Path(path).read_bytes()
    for order in "<>":
        magic = struct.unpack_from(order + "I", raw)[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            break
    else:
        raise AssertionError(f"{path}: not a pcap file")
    ns = magic == 0xA1B23C4D
    linktype = struct.unpack_from(order + "I", raw, 20)[0]
    records, pos = [], 24
    while pos < len(raw):
        sec, frac, caplen, wirelen = struct.unpack_from(order + "IIII", raw, pos)
        data = raw[pos + 16 : pos + 16 + caplen]
        assert len(data) == caplen, f"{path}: record at {pos} cut short"
        records.append((sec * 10**9 + frac * (1 if ns else 1000), wirelen, data))
        pos += 16 + caplen
    return linktype, PRECISION_NS if ns else PRECISION_US, records


def load_source(name: str) -> tuple[int, int, list[tuple[int, int, bytes]]]:
    """Records of a corpus capture, cross-checked against dpkt."""
    linktype, precision, records = read_records(CORPUS / name)
    with open(CORPUS / name, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        assert reader.datalink() == linktype
        assert [buf for _, buf in reader] == [r[2] for r in records]
    return linktype, precision, records


def make_batch(records: list[tuple[int, int, bytes]], linktype: int, prec: int):
    return PacketBatch.from_list(records, linktype, prec)


def concat_batches(batches: list[PacketBatch]) -> PacketBatch:
    data = b"".join(b.data for b in batches)
    shift = np.cumsum([0] + [len(b.data) for b in batches[:-1]])
    return PacketBatch(
        data=data,
        offset=np.concatenate(
            [b.offset + s for b, s in zip(batches, shift, strict=True)]
        ),
        caplen=np.concatenate([b.caplen for b in batches]),
        wirelen=np.concatenate([b.wirelen for b in batches]),
        ts_ns=np.concatenate([b.ts_ns for b in batches]),
        linktype=np.concatenate([b.linktype for b in batches]),
        precision=np.concatenate([b.precision for b in batches]),
    )


def files_in_order(store: MemoryStore) -> list[PcapFile]:
    return [store.files[k] for k in sorted(store.files)]


def assert_tcpdump_reads(path: str) -> None:
    proc = subprocess.run(
        ["tcpdump", "-r", path, "-w", "/dev/null"], capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


def assert_written_as_source(
    store: MemoryStore, records: list[tuple[int, int, bytes]]
) -> list[PcapFile]:
    """Every file reads with tcpdump and dpkt; together they hold `records`."""
    got: list[tuple[int, int, bytes]] = []
    rows = files_in_order(store)
    for row in rows:
        assert_tcpdump_reads(row.path)
        linktype, precision, recs = read_records(row.path)
        assert (linktype, precision) == (row.linktype, row.precision)
        assert row.size == os.path.getsize(row.path)
        assert row.packets == len(recs)
        with open(row.path, "rb") as fh:
            assert [buf for _, buf in dpkt.pcap.Reader(fh)] == [r[2] for r in recs]
        got.extend(recs)
    assert got == records
    return rows


def writer(tmp_path: Path, store: Store, max_bytes: int = 1 << 30, age: float = 1e12):
    return PcapWriter(str(tmp_path / "pcap"), NODE, store, max_bytes, age)


@pytest.mark.parametrize(("name", "linktype", "precision"), SOURCES)
def test_writer_corpus_capture_round_trips_byte_identical(
    tmp_path, name, linktype, precision
):
    src_link, src_prec, records = load_source(name)
    assert (src_link, src_prec) == (linktype, precision)
    store = MemoryStore()
    w = writer(tmp_path, store, max_bytes=4096)
    file_num, pos = w.write(make_batch(records, linktype, precision))
    w.close()

    rows = assert_written_as_source(store, records)
    assert all(r.closed for r in rows)
    assert w.packets == len(records) and w.packets_failed == 0
    assert w.files == len(rows)
    by_num = {r.file_num: r.path for r in rows}
    for i, (ts, wirelen, data) in enumerate(records):
        pkt = read_packets(by_num[int(file_num[i])], [int(pos[i])])[0]
        assert (pkt.ts_ns, pkt.wirelen, pkt.data) == (ts, wirelen, data)
        assert (pkt.linktype, pkt.precision) == (linktype, precision)


def test_writer_size_limit_rotates_and_keeps_files_under_limit(tmp_path):
    _, _, records = load_source("other/zeek-smtp.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store, max_bytes=8192)
    for i in range(0, len(records), 7):  # several batches, rotation across them
        w.write(make_batch(records[i : i + 7], 1, PRECISION_US))
    w.close()
    rows = assert_written_as_source(store, records)
    assert len(rows) >= sum(16 + len(r[2]) for r in records) // 8192
    assert all(r.size <= 8192 for r in rows)
    assert [r.file_num for r in rows] == list(range(1, len(rows) + 1))


def test_writer_age_limit_rotates_on_packet_time(tmp_path):
    # 20 SYNs about an hour apart: a 2.5 h limit gives files of 3 packets.
    _, _, records = load_source("other/zeek-rawip-rotation.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store, age=2.5 * 3600)
    w.write(make_batch(records, 101, PRECISION_US))
    w.close()
    rows = assert_written_as_source(store, records)
    assert len(rows) > 1
    for row in rows:
        assert row.last_ts_ns - row.first_ts_ns <= 2.5 * 3600 * 10**9
    for a, b in zip(rows, rows[1:], strict=False):
        assert b.first_ts_ns - a.first_ts_ns > 2.5 * 3600 * 10**9


def test_writer_linktype_and_precision_change_rotates(tmp_path):
    parts = [SOURCES[0], SOURCES[1], SOURCES[3], SOURCES[0], SOURCES[2]]
    batches, all_records = [], []
    for name, linktype, precision in parts:
        _, _, records = load_source(name)
        batches.append(make_batch(records, linktype, precision))
        all_records.extend(records)
    store = MemoryStore()
    w = writer(tmp_path, store)
    w.write(concat_batches(batches))
    w.close()
    rows = assert_written_as_source(store, all_records)
    assert [(r.linktype, r.precision) for r in rows] == [(p[1], p[2]) for p in parts]


def test_writer_positions_point_at_records(tmp_path):
    _, _, records = load_source("other/zeek-ssh-single-conn.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store, max_bytes=5000)
    file_num, pos = w.write(make_batch(records, 1, PRECISION_US))
    w.flush()
    # Positions computed independently: walk each file record by record.
    walked = []
    for row in files_in_order(store):
        raw, at = Path(row.path).read_bytes(), 24
        while at < len(raw):
            walked.append((row.file_num, at))
            at += 16 + struct.unpack_from("<I", raw, at + 8)[0]
    assert list(zip(file_num.tolist(), pos.tolist(), strict=True)) == walked
    w.close()


def test_writer_batch_larger_than_a_write_piece_is_written_whole(tmp_path):
    # 3.5 pieces of packets: several write() calls, one file, every byte kept.
    size = 60_000
    count = (7 * WRITE_PIECE_BYTES) // (2 * (size + 16))
    records = [
        (1_700_000_000 * 10**9 + k * 1000, size, bytes([k % 251]) * size)
        for k in range(count)
    ]
    store = MemoryStore()
    w = writer(tmp_path, store)
    for batch in (make_batch(records, 1, PRECISION_US), framed_big(records)):
        file_num, pos = w.write(batch)
        assert (file_num == file_num[0]).all()
        assert pos.tolist() == [pos[0] + k * (size + 16) for k in range(count)]
    w.close()
    (row,) = files_in_order(store)
    assert read_records(row.path)[2] == records + records


def framed_big(records: list[tuple[int, int, bytes]]) -> PacketBatch:
    return framed(make_batch(records, 1, PRECISION_US), ring_bytes=16 << 20)


def test_writer_scattered_batch_matches_contiguous(tmp_path):
    _, _, records = load_source("other/zeek-smtp.pcap")
    batch = make_batch(records, 1, PRECISION_US)
    # Same packets laid out in reverse order inside the data buffer.
    rev = b"".join(r[2] for r in reversed(records))
    lens = np.array([len(r[2]) for r in reversed(records)], dtype=np.int64)
    offset = (np.cumsum(lens) - lens)[::-1].copy()
    scattered = PacketBatch(
        rev, offset, batch.caplen, batch.wirelen, batch.ts_ns,
        batch.linktype, batch.precision,
    )  # fmt: skip
    n = len(batch)
    assert pack_records_numpy(scattered, 0, n) == pack_records_numpy(batch, 0, n)
    assert pack_records(batch, 0, n) == pack_records_numpy(batch, 0, n)


def framed(batch: PacketBatch, ring_bytes: int = 1 << 20) -> PacketBatch:
    """`batch` pushed through a PacketRing and popped: pcap records in `data`."""
    ring = PacketRing(ring_bytes, 1 << 12)
    ring.push_all(batch, lambda: True)
    ring.close()
    parts = []
    while (part := ring.pop(len(batch) + 1)) is not None:
        parts.append(part)
    assert len(parts) == 1 and parts[0].framed
    return parts[0]


def test_writer_framed_batch_is_written_span_for_span(tmp_path):
    # Rotation by size cuts the span into several writes; both ways agree.
    _, _, records = load_source("other/zeek-smtp.pcap")
    batch = make_batch(records, 1, PRECISION_US)
    results = []
    for name, b in (("packed", batch), ("framed", framed(batch))):
        store = MemoryStore()
        w = writer(tmp_path / name, store, max_bytes=8192)
        results.append(w.write(b))
        w.close()
        rows = assert_written_as_source(store, records)
        assert len(rows) > 1
    assert all(np.array_equal(a, b) for a, b in zip(*results, strict=True))


def test_writer_record_span_only_for_back_to_back_records():
    _, _, records = load_source("other/zeek-smtp.pcap")
    batch = framed(make_batch(records, 1, PRECISION_US))
    n = len(batch)
    span = record_span(batch, 2, n)
    assert span is not None and bytes(span) == pack_records(batch, 2, n)
    assert record_span(make_batch(records, 1, PRECISION_US), 0, n) is None
    keep = np.ones(n, dtype=bool)
    keep[3] = False  # a hole: records 2 and 4 are no longer back to back
    holed = replace(batch.subset(keep), framed=True)
    assert record_span(holed, 0, n - 1) is None
    assert record_span(holed, 0, 3) is not None


def test_writer_unwritable_dir_raises_writer_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(WriterError, match=r"cannot be created or written.*set another"):
        PcapWriter(str(blocker / "pcap"), NODE, MemoryStore(), 1 << 20, 60)


def test_writer_bad_node_name_raises_writer_error(tmp_path):
    with pytest.raises(WriterError, match=r"node name '\.\./x' cannot be used"):
        PcapWriter(str(tmp_path), "../x", MemoryStore(), 1 << 20, 60)


def test_writer_registry_row_tracks_flush(tmp_path):
    _, _, records = load_source("other/zeek-smtp.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store)
    w.write(make_batch(records[:10], 1, PRECISION_US))
    w.flush()
    row = store.files[(NODE, 1)]
    assert not row.closed
    assert (row.packets, row.size) == (10, os.path.getsize(row.path))
    assert (row.first_ts_ns, row.last_ts_ns) == (records[0][0], records[9][0])
    w.close()
    assert store.files[(NODE, 1)].closed


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from test_writer import load_source, make_batch
from fpc.store import open_store
from fpc.writer import PcapWriter
_, _, records = load_source("other/zeek-smtp.pcap")
batch = make_batch(records, 1, 6)
w = PcapWriter({data!r} + "/pcap", "killed", open_store({data!r}), 1 << 40, 1e9)
w.write(batch)
w.flush()
print(w.current_file().path, flush=True)
while {keep_writing!r}:
    w.write(batch)
time.sleep(60)
"""


def run_and_kill(data_dir: Path, keep_writing: bool) -> str:
    """Start a writer process, SIGKILL it after its first flush; the file path."""
    script = KILL_SCRIPT.format(
        tests=str(Path(__file__).parent), data=str(data_dir), keep_writing=keep_writing
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        path = proc.stdout.readline().strip()
        time.sleep(0.3)  # idle, or writing batches that are never flushed
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert path, "the writer process did not get to its first flush"
    return path


def test_writer_killed_after_flush_leaves_valid_file(tmp_path):
    path = run_and_kill(tmp_path, keep_writing=False)
    _, _, source = load_source("other/zeek-smtp.pcap")
    assert_tcpdump_reads(path)
    assert read_records(path)[2] == source


def test_writer_killed_mid_write_is_repaired_by_next_writer(tmp_path):
    # SIGKILL can stop a large write() part-way through a record; the next
    # writer of the node cuts that partial record and closes the registry row.
    path = run_and_kill(tmp_path, keep_writing=True)
    _, _, source = load_source("other/zeek-smtp.pcap")
    store = open_store(str(tmp_path))
    w = PcapWriter(str(tmp_path / "pcap"), "killed", store, 1 << 30, 1e9)
    assert_tcpdump_reads(path)
    _, _, got = read_records(path)
    assert got[: len(source)] == source  # everything flushed is still there
    assert got == source * (len(got) // len(source)) + source[: len(got) % len(source)]
    row = store.get_file("killed", 1)
    assert row.closed and row.size == os.path.getsize(path)
    assert row.packets == len(got) and row.last_ts_ns == got[-1][0]
    w.write(make_batch(source[:3], 1, PRECISION_US))  # the next file number
    w.close()
    assert store.get_file("killed", 2).packets == 3
    store.close()


def test_writer_start_cuts_partial_record_of_unclosed_file(tmp_path, caplog):
    _, _, source = load_source("other/zeek-smtp.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store)
    w.write(make_batch(source[:20], 1, PRECISION_US))
    w.flush()  # the row says 20 packets; the next 5 are written, not flushed
    w.write(make_batch(source[20:25], 1, PRECISION_US))
    path = w.current_file().path
    record = Path(path).read_bytes()[-(16 + len(source[24][2])) :]
    with open(path, "ab") as fh:  # what a write cut by SIGKILL leaves behind
        fh.write(record[:-7])
    # The killed process never closes its file: a new writer takes over.
    w2 = writer(tmp_path, store)
    assert_tcpdump_reads(path)
    assert read_records(path)[2] == source[:25]
    row = store.files[(NODE, 1)]
    assert (row.packets, row.size, row.closed) == (25, os.path.getsize(path), True)
    assert row.last_ts_ns == source[24][0]
    assert f"cut_bytes={len(record) - 7}" in caplog.text
    w2.close()
    os.close(w._file.fd)


def test_writer_full_disk_counts_lost_packets_and_keeps_flushed(small_disk, caplog):
    _check_full_disk(small_disk("256k"), caplog)


def _check_full_disk(mnt: Path, caplog) -> None:
    _, _, records = load_source("other/zeek-smtp.pcap")  # 40 KB a pass
    batch = make_batch(records, 1, PRECISION_US)
    source = records
    store = MemoryStore()
    w = PcapWriter(str(mnt), NODE, store, 100_000, 1e9, retry_interval_s=0.0)
    results = []
    for _ in range(12):  # about 480 KB into 256 KB
        results.append(w.write(batch))
        w.flush()
    assert w.packets_failed > 0
    assert w.packets + w.packets_failed == 12 * len(records)
    assert "pcap write failed" in caplog.text

    lost = sum(int((pos == -1).sum()) for _, pos in results)
    assert lost == w.packets_failed
    _check_survivors(store, results, source)

    # Space comes back: the next batch goes to a new file.
    for row in files_in_order(store)[:-1]:
        os.unlink(row.path)
    before = w.files
    file_num, pos = w.write(batch)
    w.close()
    assert (pos >= 0).all() and w.files > before
    assert_tcpdump_reads(store.files[(NODE, int(file_num[0]))].path)


def _check_survivors(store: MemoryStore, results, source) -> None:
    """Every packet given a position reads back as written; files stay valid."""
    paths = {r.file_num: r.path for r in files_in_order(store)}
    for path in paths.values():
        assert_tcpdump_reads(path)
        read_records(path)
    for file_num, pos in results:
        for i in np.flatnonzero(pos >= 0):
            pkt = read_packets(paths[int(file_num[i])], [int(pos[i])])[0]
            assert (pkt.ts_ns, pkt.wirelen, pkt.data) == source[i]


def test_reader_damaged_record_raises_pcap_unavailable(tmp_path):
    _, _, records = load_source("other/zeek-smtp.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store)
    file_num, pos = w.write(make_batch(records, 1, PRECISION_US))
    w.close()
    path = store.files[(NODE, 1)].path
    with pytest.raises(PcapUnavailable, match=r"damaged record at byte 25"):
        read_packets(path, [25])  # not a record boundary: caplen is garbage
    with pytest.raises(PcapUnavailable, match=r"outside the file"):
        read_packets(path, [os.path.getsize(path)])
    with open(path, "r+b") as fh:  # cut the last packet short
        fh.truncate(os.path.getsize(path) - 3)
    with pytest.raises(PcapUnavailable, match=r"runs past the end of the file"):
        read_packets(path, [int(pos[-1])])
    with pytest.raises(PcapUnavailable, match=r"cannot open PCAP file"):
        PcapFileReader(str(tmp_path / "missing.pcap"))


def stored_packets(tmp_path: Path, names: list[str]) -> list:
    """Write each corpus capture with its own writer and read every packet back."""
    packets = []
    for name in names:
        store = MemoryStore()
        w = writer(tmp_path / name.replace("/", "_"), store)
        linktype, precision, records = load_source(name)
        _, pos = w.write(make_batch(records, linktype, precision))
        w.close()
        packets += read_packets(store.files[(NODE, 1)].path, pos.tolist())
    return packets


def read_pcapng(path: Path) -> list[tuple[int, int, int, int, bytes]]:
    """(linktype, precision, ts_ns, wirelen, data) per EPB of a little-endian pcapng."""
    raw, at, ifaces, out = path.read_bytes(), 0, [], []
    while at < len(raw):
        btype, blen = struct.unpack_from("<II", raw, at)
        assert struct.unpack_from("<I", raw, at + blen - 4)[0] == blen
        if btype == 1:
            linktype = struct.unpack_from("<H", raw, at + 8)[0]
            code, _, resol = struct.unpack_from("<HHB", raw, at + 16)
            ifaces.append((linktype, resol if code == 9 else 6))
        elif btype == 6:
            if_id, hi, lo, caplen, wirelen = struct.unpack_from("<IIIII", raw, at + 8)
            linktype, prec = ifaces[if_id]
            ts = (hi << 32 | lo) * (1 if prec == 9 else 1000)
            out.append((linktype, prec, ts, wirelen, raw[at + 28 : at + 28 + caplen]))
        at += blen
    return out


def test_output_mixed_precision_is_pcapng_tcpdump_reads(tmp_path):
    names = [SOURCES[1][0], SOURCES[3][0]]  # Linux SLL in us, then in ns
    packets = stored_packets(tmp_path, names)
    out = make_output({(p.linktype, p.precision) for p in packets})
    assert out.suffix == "pcapng"
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(out.header() + b"".join(out.encode(p) for p in packets))
    assert_tcpdump_reads(str(path))
    proc = subprocess.run(
        ["tcpdump", "-r", str(path), "-nn", "-tt", "--nano"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    stamps = [line.split()[0] for line in proc.stdout.splitlines()]
    assert stamps == [f"{p.ts_ns // 10**9}.{p.ts_ns % 10**9:09d}" for p in packets]


def test_output_mixed_linktypes_is_pcapng_with_one_idb_each(tmp_path):
    # libpcap refuses pcapng files whose interfaces differ in link type, so
    # this one is checked with dpkt and a block-by-block walk.
    names = [SOURCES[0][0], SOURCES[3][0], SOURCES[1][0], SOURCES[2][0]]
    packets = stored_packets(tmp_path, names)
    out = make_output({(p.linktype, p.precision) for p in packets})
    path = tmp_path / "mixed.pcapng"
    path.write_bytes(out.header() + b"".join(out.encode(p) for p in packets))
    want = [(p.linktype, p.precision, p.ts_ns, p.wirelen, p.data) for p in packets]
    assert read_pcapng(path) == want
    with open(path, "rb") as fh:
        assert [buf for _, buf in dpkt.pcapng.Reader(fh)] == [p.data for p in packets]


def test_output_single_kind_is_pcap_identical_to_source(tmp_path):
    linktype, precision, records = load_source("other/tcpdump-tcp-handshake-nano.pcap")
    store = MemoryStore()
    w = writer(tmp_path, store)
    _, pos = w.write(make_batch(records, linktype, precision))
    w.close()
    packets = read_packets(store.files[(NODE, 1)].path, pos.tolist())
    out = make_output({(p.linktype, p.precision) for p in packets})
    path = tmp_path / "one.pcap"
    path.write_bytes(out.header() + b"".join(out.encode(p) for p in packets))
    assert_tcpdump_reads(str(path))
    assert read_records(path) == (linktype, precision, records)
    shutil.rmtree(tmp_path / "pcap")


def test_writer_store_down_at_rotation_counts_packets_not_written(tmp_path, caplog):
    _, _, source = load_source("other/zeek-smtp.pcap")
    store = open_store(str(tmp_path))
    w = PcapWriter(str(tmp_path / "pcap"), NODE, store, 8192, 1e12)
    _, pos = w.write(make_batch(source[:10], 1, PRECISION_US))
    assert (pos >= 0).all()
    store.close()  # the next rotation cannot get a file number
    file_num, pos = w.write(make_batch(source[10:], 1, PRECISION_US))
    assert (pos == -1).any() and w.packets_failed == int((pos == -1).sum())
    assert w.packets + w.packets_failed == len(source)
    assert "pcap file number unavailable" in caplog.text
    w.close()
    # Whatever got a position is in the files, which tcpdump reads.
    paths = sorted((tmp_path / "pcap").iterdir())
    got = []
    for path in paths:
        assert_tcpdump_reads(str(path))
        got += read_records(path)[2]
    assert got == source[: len(got)] and len(got) == w.packets


def test_plan_converts_big_endian_file_to_little_endian_pcap(tmp_path):
    name = "other/tcpdump-pptp-bigendian.pcap"
    linktype, precision, records = load_source(name)
    path = tmp_path / "be.pcap"
    shutil.copy(CORPUS / name, path)
    raw, positions, at = path.read_bytes(), [], 24
    while at < len(raw):
        positions.append(at)
        at += 16 + struct.unpack_from(">I", raw, at + 8)[0]
    packets = PacketList(
        [("n", 1)],
        np.zeros(len(positions), dtype=np.int64),
        np.array(positions[::-1], dtype=np.int64),  # newest first
        np.full(len(positions), -1, dtype=np.int64),
    )
    plan = PacketPlan(packets, lambda key: (str(path), None)).build(by_time=True)
    out = make_output(plan.kinds())
    body = out.header() + plan.encode(out, 0, len(positions))
    plan.close()
    (tmp_path / "le.pcap").write_bytes(body)
    assert body[:4] == b"\xd4\xc3\xb2\xa1"
    assert read_records(tmp_path / "le.pcap") == (linktype, precision, records)


KINDS = [(1, PRECISION_US), (1, PRECISION_NS), (113, PRECISION_US), (101, PRECISION_NS)]


@st.composite
def batches(draw):
    """Packets of random size, kind and time (times may go backwards)."""
    runs = st.tuples(st.sampled_from(KINDS), st.integers(1, 20))
    kinds = [
        k for k, r in draw(st.lists(runs, min_size=1, max_size=5)) for _ in range(r)
    ]
    n = len(kinds)
    sizes = draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(-(10**9), 10**10), min_size=n, max_size=n))
    ts = np.cumsum(steps) + 1_600_000_000 * 10**9
    data = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    return [(int(t), len(d) + 4, d, k) for t, d, k in zip(ts, data, kinds, strict=True)]


def batch_of(packets) -> PacketBatch:
    b = PacketBatch.from_list([p[:3] for p in packets], 1)
    b.linktype = np.array([p[3][0] for p in packets], dtype=np.uint16)
    b.precision = np.array([p[3][1] for p in packets], dtype=np.uint8)
    return b


@settings(max_examples=60, deadline=None)
@given(
    packets=batches(),
    split=st.integers(1, 60),
    max_bytes=st.integers(100, 20000),
    age_s=st.floats(1, 1e5),
)
def test_writer_random_batches_round_trip(
    tmp_path_factory, packets, split, max_bytes, age_s
):
    tmp = tmp_path_factory.mktemp("prop")
    store = MemoryStore()
    w = PcapWriter(str(tmp / "pcap"), NODE, store, max_bytes, age_s)
    results = [
        w.write(batch_of(packets[i : i + split])) for i in range(0, len(packets), split)
    ]
    w.close()
    got = []
    for row in files_in_order(store):
        linktype, precision, recs = read_records(row.path)
        assert (linktype, precision) == (row.linktype, row.precision) and recs
        assert row.size <= max_bytes or row.packets == 1
        # Age counts from the file's first packet; 1 us slack for truncation.
        assert max(r[0] for r in recs) - recs[0][0] <= age_s * 10**9 + 1000
        got += [(ts, wl, d, (linktype, precision)) for ts, wl, d in recs]
    unit = {PRECISION_US: 1000, PRECISION_NS: 1}
    want = [(t // unit[k[1]] * unit[k[1]], wl, d, k) for t, wl, d, k in packets]
    assert got == want
    positions = [(f, p) for fn, pos in results for f, p in zip(fn, pos, strict=True)]
    assert len(set(positions)) == len(packets) and min(p for _, p in positions) >= 24


def test_write_batch_of_records_copies_them_as_packing_would(tmp_path):
    """A batch read from a little-endian pcap goes to disk as its own record
    bytes; the file is the one packing every record gives."""
    t0 = 1_700_000_000 * 1_000_000_000
    packets = [(t0 + i * 1000, 60 + i, bytes([i]) * (40 + i)) for i in range(50)]
    packed = PacketBatch.from_list(packets, 1)
    source = tmp_path / "in.pcap"
    source.write_bytes(pcap_file_header(1, PRECISION_US) + pack_records(packed, 0, 50))
    with open_capture(str(source)) as capture:
        (batch,) = list(capture.batches())
    assert batch.framed
    outputs = []
    for name, b in (("copied", batch), ("packed", replace(batch, framed=False))):
        w = PcapWriter(str(tmp_path / name), NODE, MemoryStore(), 1 << 30, 3600)
        w.write(b)
        w.close()
        outputs.append(next((tmp_path / name).iterdir()).read_bytes())
    assert outputs[0] == outputs[1] == source.read_bytes()
