"""Tests of fpc.reader against the corpus, dpkt and hand-built capture files."""

from __future__ import annotations

import os
import struct
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CORPUS  # noqa: E402
from fpc.errors import CaptureError, CorruptCapture
from fpc.packets import PRECISION_NS, PRECISION_US
from fpc.reader import CaptureFile, PcapngFile, expand_paths, open_capture

NS = 1_000_000_000


# --- the corpus manifest: the independent packet counts ------------------------


def _manifest_rows() -> dict[str, dict[str, str]]:
    """Rows of MANIFEST.md's capture tables, by relative path of the capture."""
    rows: dict[str, dict[str, str]] = {}
    header: list[str] = []
    for line in (CORPUS / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|"):
            header = []
        elif "packets" in cells:
            header = cells
        elif header and len(cells) == len(header):
            rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


MANIFEST = _manifest_rows()
CAPTURES = sorted(
    str(p.relative_to(CORPUS))
    for p in CORPUS.rglob("*")
    if p.suffix in (".pcap", ".pcapng", ".cap")
)
DAMAGED = sorted(p for p in CAPTURES if MANIFEST[p]["parses"].startswith("no"))
INTACT = sorted(p for p in CAPTURES if p not in DAMAGED)


def read_all(path: str | Path, **kwargs: int) -> tuple[CaptureFile, list[tuple]]:
    """Every packet as (ts_ns, bytes, linktype, precision, caplen, wirelen)."""
    packets = []
    with open_capture(str(path)) as capture:
        for batch in capture.batches(**kwargs):
            for i in range(len(batch)):
                packets.append(
                    (
                        int(batch.ts_ns[i]),
                        batch.packet(i),
                        int(batch.linktype[i]),
                        int(batch.precision[i]),
                        int(batch.caplen[i]),
                        int(batch.wirelen[i]),
                    )
                )
    return capture, packets


def read_until_error(path: str | Path) -> tuple[list[tuple], CaptureError | None]:
    """Packets read before the first CaptureError, and that error."""
    packets: list[tuple] = []
    try:
        with open_capture(str(path)) as capture:
            for batch in capture.batches(max_packets=5):
                packets.extend(
                    (int(batch.ts_ns[i]), batch.packet(i)) for i in range(len(batch))
                )
    except CaptureError as exc:
        return packets, exc
    return packets, None


def dpkt_pcap_records(path: Path) -> list[tuple[int, int, int, int, bytes]]:
    """(sec, frac, caplen, wirelen, bytes) of each record, parsed by dpkt."""
    raw = path.read_bytes()
    little = raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    header_cls = dpkt.pcap.LEPktHdr if little else dpkt.pcap.PktHdr
    records, pos = [], 24
    while pos + 16 <= len(raw):
        hdr = header_cls(raw[pos : pos + 16])
        data = raw[pos + 16 : pos + 16 + hdr.caplen]
        if len(data) < hdr.caplen:
            break
        records.append((hdr.tv_sec, hdr.tv_usec, hdr.caplen, hdr.len, data))
        pos += 16 + hdr.caplen
    return records


def dpkt_packets(path: Path) -> list[tuple[float | Decimal, bytes]]:
    with path.open("rb") as fh:
        return list(dpkt.pcap.UniversalReader(fh))


# --- the corpus ----------------------------------------------------------------


def test_corpus_every_file_listed_in_manifest() -> None:
    assert CAPTURES, "no captures found under the corpus"
    assert set(CAPTURES) <= set(MANIFEST)


@pytest.mark.parametrize("name", CAPTURES)
def test_open_capture_corpus_file_reads_or_fails_cleanly(name: str) -> None:
    packets, error = read_until_error(CORPUS / name)
    assert error is None or isinstance(error, CaptureError)


OTHER_FILES = sorted(
    str(p.relative_to(CORPUS))
    for p in CORPUS.rglob("*")
    if p.is_file() and str(p.relative_to(CORPUS)) not in CAPTURES
)


@pytest.mark.parametrize("name", OTHER_FILES)
def test_open_capture_corpus_non_capture_is_refused(name: str) -> None:
    packets, error = read_until_error(CORPUS / name)
    assert packets == []
    assert isinstance(error, CaptureError)
    assert "is not a pcap or pcapng file" in str(error)


@pytest.mark.parametrize("name", INTACT)
def test_batches_intact_corpus_file_count_matches_manifest(name: str) -> None:
    capture, packets = read_all(CORPUS / name)
    assert len(packets) == int(MANIFEST[name]["packets"])
    assert capture.packets == len(packets)
    assert capture.position == capture.size == (CORPUS / name).stat().st_size
    assert capture.bytes_read == sum(p[4] for p in packets)
    assert capture.errors == [] or name.endswith("timestamp-invalid-nano.pcap")


@pytest.mark.parametrize("name", INTACT)
def test_batches_intact_corpus_file_matches_dpkt(name: str) -> None:
    _, packets = read_all(CORPUS / name, max_packets=3)
    reference = dpkt_packets(CORPUS / name)
    assert [p[1] for p in packets] == [r[1] for r in reference]
    if name.endswith("pcapng-multi-interface.pcapng"):
        return  # dpkt applies the first interface's resolution to both
    for (ts_ns, *_), (ts, _) in zip(packets, reference, strict=True):
        assert abs(Decimal(ts_ns) / NS - Decimal(ts)) < Decimal("0.000001")


@pytest.mark.parametrize("name", [p for p in INTACT if p.endswith((".pcap", ".cap"))])
def test_batches_pcap_headers_exactly_as_dpkt(name: str) -> None:
    _, packets = read_all(CORPUS / name)
    records = dpkt_pcap_records(CORPUS / name)
    magic = (CORPUS / name).read_bytes()[:4]
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    frac_ns = 1 if nano else 1000
    expected = [
        (sec * NS + frac * frac_ns, data, caplen, max(wirelen, caplen))
        for sec, frac, caplen, wirelen, data in records
    ]
    assert [(p[0], p[1], p[4], p[5]) for p in packets] == expected


def test_batches_nanosecond_pcap_keeps_nanoseconds() -> None:
    path = CORPUS / "other/tcpdump-tcp-handshake-nano.pcap"
    capture, packets = read_all(path)
    reference = dpkt_packets(path)  # dpkt gives Decimal seconds for ns files
    assert [p[0] for p in packets] == [int(ts * NS) for ts, _ in reference]
    assert any(p[0] % 1000 for p in packets)
    assert {p[3] for p in packets} == {PRECISION_NS}
    assert {p[2] for p in packets} == {113}


@pytest.mark.parametrize(
    "name", ["arkime/bigendian.pcap", "other/tcpdump-pptp-bigendian.pcap"]
)
def test_batches_big_endian_pcap_reads(name: str) -> None:
    assert (CORPUS / name).read_bytes()[:4] == b"\xa1\xb2\xc3\xd4"
    capture, packets = read_all(CORPUS / name)
    assert capture.format == "pcap"
    assert len(packets) == int(MANIFEST[name]["packets"]) > 0
    assert [p[1] for p in packets] == [r[4] for r in dpkt_pcap_records(CORPUS / name)]
    assert {p[3] for p in packets} == {PRECISION_US}


def test_batches_pcapng_mixed_linktypes_per_interface() -> None:
    name = "other/zeek-pcapng-many-idbs-mixed-linktypes.pcapng"
    capture, packets = read_all(CORPUS / name)
    assert isinstance(capture, PcapngFile)
    assert len(capture.interfaces) == 126  # "126 IDB" in the manifest
    assert {i.linktype for i in capture.interfaces} == {1, 113, 274}
    assert len(packets) == 17
    # The manifest says the packets are Ethernet + 802.1Q + IPv6.
    assert {p[2] for p in packets} == {1}
    assert all(p[1][12:14] == b"\x81\x00" for p in packets)


def test_batches_pcapng_per_interface_resolution() -> None:
    name = "other/zeek-pcapng-multi-interface.pcapng"
    _, packets = read_all(CORPUS / name)
    seconds = [p[0] // NS for p in packets]
    # The manifest (tshark) gives 1767663437.112 for the second interface.
    assert abs(packets[2][0] - 1767663437_112 * 10**6) < 10**6
    assert all(1767663000 < s < 1767664000 for s in seconds)
    assert [p[3] for p in packets] == [PRECISION_NS] * 2 + [PRECISION_US] * 4


def test_batches_header_only_file_gives_zero_packets() -> None:
    path = CORPUS / "arkime/empty.pcap"
    assert path.stat().st_size == 24
    capture, packets = read_all(path)
    assert packets == [] and capture.errors == []


# --- damaged corpus files ------------------------------------------------------


def test_batches_truncated_corpus_file_keeps_complete_records() -> None:
    path = CORPUS / "other/suricata-http-mime-truncated-file.pcap"
    packets, error = read_until_error(path)
    assert isinstance(error, CorruptCapture)
    records = dpkt_pcap_records(path)
    assert len(packets) == len(records) == 2696
    assert [p[1] for p in packets] == [r[4] for r in records]
    assert error.offset == 24 + sum(16 + r[2] for r in records)


def test_batches_bad_caplen_corpus_file_stops_at_bad_record() -> None:
    path = CORPUS / "other/suricata-fuzz-bad-caplen.pcap"
    packets, error = read_until_error(path)
    first = dpkt_pcap_records(path)[0]
    assert isinstance(error, CorruptCapture)
    assert [p[1] for p in packets] == [first[4]]
    assert error.offset == 24 + 16 + first[2]
    assert "caplen" in error.reason


def test_batches_invalid_version_corpus_file_is_corrupt_at_header() -> None:
    path = CORPUS / "other/libpcap-pcap-invalid-version-1.pcap"
    assert struct.unpack_from("<H", path.read_bytes(), 4)[0] == 1
    packets, error = read_until_error(path)
    assert packets == []
    assert isinstance(error, CorruptCapture) and error.offset == 4
    assert "version 1.4" in str(error)


def test_batches_shb_option_too_long_is_corrupt_at_first_block() -> None:
    packets, error = read_until_error(
        CORPUS / "other/libpcap-shb-option-too-long.pcapng"
    )
    assert packets == []
    assert isinstance(error, CorruptCapture) and error.offset == 0
    # Its option and its trailing length both disagree with the block length.
    assert "0xa0d0d0a" in error.reason


@pytest.mark.parametrize("name", DAMAGED)
def test_batches_damaged_corpus_file_raises_corrupt(name: str) -> None:
    packets, error = read_until_error(CORPUS / name)
    assert isinstance(error, CorruptCapture)
    assert len(packets) <= int(MANIFEST[name]["packets"])
    assert str(CORPUS / name) in str(error)


# --- hand-built classic pcap ---------------------------------------------------


def pcap_file(
    records: list[tuple[int, int, bytes, int]],
    order: str = "<",
    nano: bool = False,
    snaplen: int = 65535,
    linktype: int = 1,
    version: tuple[int, int] = (2, 4),
) -> bytes:
    """A classic pcap of (sec, frac, data, wirelen) records, from the format spec."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, *version, 0, 0, snaplen, linktype)]
    for sec, frac, data, wirelen in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


SAMPLE_RECORDS = [
    (1_700_000_000, 1, b"\x01" * 60, 60),
    (1_700_000_001, 999_999, b"\x02" * 1514, 1514),
    (4_000_000_000, 500_000, b"\x03" * 42, 100),  # after 2038: unsigned seconds
]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_batches_handbuilt_pcap_fields(tmp_path: Path, order: str, nano: bool) -> None:
    path = write(tmp_path, "a.pcap", pcap_file(SAMPLE_RECORDS, order, nano))
    capture, packets = read_all(path)
    unit = 1 if nano else 1000
    assert packets == [
        (s * NS + f * unit, d, 1, PRECISION_NS if nano else PRECISION_US, len(d), w)
        for s, f, d, w in SAMPLE_RECORDS
    ]
    assert capture.format == "pcap"


def test_batches_linktype_fcs_bits_are_ignored(tmp_path: Path) -> None:
    content = pcap_file(SAMPLE_RECORDS[:1], linktype=(1 << 28) | 113)
    _, packets = read_all(write(tmp_path, "fcs.pcap", content))
    assert packets[0][2] == 113


def test_batches_caplen_above_wirelen_is_counted(tmp_path: Path) -> None:
    records = [(1, 0, b"x" * 80, 60), (2, 0, b"y" * 60, 60), (3, 0, b"z" * 90, 10)]
    capture, packets = read_all(write(tmp_path, "w.pcap", pcap_file(records)))
    assert [p[5] for p in packets] == [80, 60, 90]
    assert capture.anomalies == {"wirelen_below_caplen": 2}
    assert len(capture.errors) == 1


def test_batches_caplen_above_snaplen_is_corrupt(tmp_path: Path) -> None:
    records = [(1, 0, b"a" * 50, 50), (2, 0, b"b" * 101, 101)]
    path = write(tmp_path, "s.pcap", pcap_file(records, snaplen=100))
    packets, error = read_until_error(path)
    assert [p[1] for p in packets] == [b"a" * 50]
    assert isinstance(error, CorruptCapture) and error.offset == 24 + 16 + 50


def test_batches_garbage_after_records_is_corrupt(tmp_path: Path) -> None:
    content = pcap_file(SAMPLE_RECORDS) + b"\xff" * 40
    packets, error = read_until_error(write(tmp_path, "g.pcap", content))
    assert len(packets) == len(SAMPLE_RECORDS)
    assert isinstance(error, CorruptCapture)
    assert error.offset == len(content) - 40


@pytest.mark.parametrize("cut", [1, 15, 16, 17, 1513])
def test_batches_truncated_last_record_is_corrupt(tmp_path: Path, cut: int) -> None:
    content = pcap_file(SAMPLE_RECORDS[:2])
    packets, error = read_until_error(write(tmp_path, "t.pcap", content[:-cut]))
    assert [p[1] for p in packets] == [SAMPLE_RECORDS[0][2]]
    assert isinstance(error, CorruptCapture) and error.offset == 24 + 16 + 60


def test_batches_max_packets_and_max_bytes_cut_batches(tmp_path: Path) -> None:
    records = [(i, 0, bytes([i]) * (100 + i), 100 + i) for i in range(50)]
    path = write(tmp_path, "m.pcap", pcap_file(records))
    with open_capture(str(path)) as capture:
        batches = list(capture.batches(max_packets=7, max_bytes=600))
    assert all(len(b) <= 7 and len(b.data) <= 600 for b in batches)
    got = [b.packet(i) for b in batches for i in range(len(b))]
    assert got == [r[2] for r in records]


def test_batches_file_larger_than_read_buffer_matches_dpkt(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    sizes = [(i * 7919) % 9000 + 1 for i in range(3000)]  # ~13 MiB, odd sizes
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, snaplen=65535)
        for i, size in enumerate(sizes):
            writer.writepkt(bytes([i % 256]) * size, ts=1_600_000_000 + i / 1000)
    _, packets = read_all(path)
    reference = dpkt_packets(path)
    assert [p[1] for p in packets] == [r[1] for r in reference]
    assert [round(p[0] / NS, 3) for p in packets] == [round(r[0], 3) for r in reference]


def test_batches_called_again_after_damage_raises_same_error(tmp_path: Path) -> None:
    content = pcap_file(SAMPLE_RECORDS) + b"\x00" * 5
    with open_capture(str(write(tmp_path, "again.pcap", content))) as capture:
        with pytest.raises(CorruptCapture) as first:
            list(capture.batches())
        with pytest.raises(CorruptCapture) as second:
            list(capture.batches())
    assert second.value is first.value
    assert capture.packets == len(SAMPLE_RECORDS)
    assert capture.errors == [str(first.value)]


# --- hand-built pcapng ---------------------------------------------------------


def pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    length = 12 + len(pad4(body))
    return (
        struct.pack(order + "II", btype, length)
        + pad4(body)
        + struct.pack(order + "I", length)
    )


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, snaplen: int = 0, options: bytes = b"") -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if options:
        body += options + option(order, 0, b"")
    return block(order, 1, body)


def epb(order: str, iface: int, raw_ts: int, data: bytes, wirelen: int = -1) -> bytes:
    wire = len(data) if wirelen < 0 else wirelen
    head = struct.pack(
        order + "IIIII", iface, raw_ts >> 32, raw_ts & 0xFFFFFFFF, len(data), wire
    )
    return block(order, 6, head + data)


def spb(order: str, data: bytes, wirelen: int) -> bytes:
    return block(order, 3, struct.pack(order + "I", wirelen) + data)


def obsolete_pb(order: str, iface: int, raw_ts: int, data: bytes) -> bytes:
    head = struct.pack(
        order + "HHIIII", iface, 0, raw_ts >> 32, raw_ts & 0xFFFFFFFF, len(data), 99
    )
    return block(order, 2, head + data)


def two_section_pcapng() -> tuple[bytes, list[tuple[int, bytes, int, int, int]]]:
    """Sections in both byte orders; interfaces with several resolutions.

    Returns the file and the expected (ts_ns, bytes, linktype, precision, wirelen).
    """
    le, be = "<", ">"
    ns_iface = option(le, 9, b"\x09")
    pow2_iface = option(le, 9, b"\x94")  # 2**-20 s
    ms_offset = option(be, 9, b"\x03") + option(be, 14, struct.pack(">q", 100))
    content = b"".join(
        [
            shb(le),
            idb(le, 1, options=ns_iface),
            idb(le, 113, snaplen=4, options=pow2_iface),
            block(le, 4, b"name resolution, skipped"),
            epb(le, 0, 1_600_000_000_123_456_789, b"A" * 20),
            epb(le, 1, (1_650_000_000 << 20) | (1 << 19), b"B" * 4, wirelen=30),
            spb(le, b"C" * 4, 50),  # interface 0, timestamp of the last packet
            block(le, 5, b"interface statistics, skipped"),
            block(le, 0x40000BAD, b"custom, skipped"),
            shb(be),
            idb(be, 101, options=ms_offset),
            obsolete_pb(be, 0, 1_234, b"D" * 9),
            epb(be, 0, 5_000, b"E" * 3),
        ]
    )
    expected = [
        (1_600_000_000_123_456_789, b"A" * 20, 1, PRECISION_NS, 20),
        # 2**-20 s is finer than a microsecond: the packet keeps nanoseconds.
        (1_650_000_000_500_000_000, b"B" * 4, 113, PRECISION_NS, 30),
        (1_650_000_000_500_000_000, b"C" * 4, 1, PRECISION_NS, 50),
        (101_234_000_000, b"D" * 9, 101, PRECISION_US, 99),
        (105_000_000_000, b"E" * 3, 101, PRECISION_US, 3),
    ]
    return content, expected


def test_batches_handbuilt_pcapng_sections_interfaces_blocks(tmp_path: Path) -> None:
    content, expected = two_section_pcapng()
    path = write(tmp_path, "two.pcapng", content)
    capture, packets = read_all(path, max_packets=2)
    assert [(p[0], p[1], p[2], p[3], p[5]) for p in packets] == expected
    assert capture.format == "pcapng" and capture.errors == []
    assert capture.position == len(content)


def test_batches_pcapng_spb_takes_snaplen_of_interface_0(tmp_path: Path) -> None:
    content = shb("<") + idb("<", 1, snaplen=3) + spb("<", b"abcd", 10)
    _, packets = read_all(write(tmp_path, "spb.pcapng", content))
    assert [(p[1], p[4], p[5]) for p in packets] == [(b"abc", 3, 10)]


def test_batches_pcapng_new_section_forgets_interfaces(tmp_path: Path) -> None:
    good = shb("<") + idb("<", 1) + idb("<", 1) + epb("<", 1, 5, b"x")
    content = good + shb("<") + idb("<", 1) + epb("<", 1, 6, b"y")
    packets, error = read_until_error(write(tmp_path, "reset.pcapng", content))
    assert [p[1] for p in packets] == [b"x"]
    assert isinstance(error, CorruptCapture)
    assert error.offset == len(content) - len(epb("<", 1, 6, b"y"))
    assert "interface 1" in error.reason


def test_batches_pcapng_length_fields_disagree(tmp_path: Path) -> None:
    good = shb("<") + idb("<", 1) + epb("<", 0, 1, b"ok")
    bad = bytearray(epb("<", 0, 2, b"bad!"))
    bad[-4:] = struct.pack("<I", len(bad) + 4)
    packets, error = read_until_error(write(tmp_path, "len.pcapng", good + bad))
    assert [p[1] for p in packets] == [b"ok"]
    assert isinstance(error, CorruptCapture) and error.offset == len(good)


@pytest.mark.parametrize("damage", ["trailer", "interface", "caplen"])
def test_batches_pcapng_damage_inside_a_run_of_packets(
    tmp_path: Path, damage: str
) -> None:
    good = [epb("<", 0, i, bytes([i]) * (10 + i)) for i in range(3)]
    bad = bytearray(epb("<", 0, 9, b"damaged!"))
    if damage == "trailer":
        bad[-4:] = struct.pack("<I", len(bad) - 4)
    elif damage == "interface":
        bad[8:12] = struct.pack("<I", 1)
    else:
        bad[20:24] = struct.pack("<I", 200)
    head = shb("<") + idb("<", 1)
    content = head + b"".join(good) + bad + epb("<", 0, 10, b"after")
    packets, error = read_until_error(write(tmp_path, "run.pcapng", content))
    assert [p[1] for p in packets] == [bytes([i]) * (10 + i) for i in range(3)]
    assert isinstance(error, CorruptCapture)
    assert error.offset == len(head) + sum(len(g) for g in good)


def test_batches_pcapng_truncated_block(tmp_path: Path) -> None:
    good = shb(">") + idb(">", 1) + epb(">", 0, 1, b"ok")
    content = good + epb(">", 0, 2, b"lost" * 10)[:-7]
    packets, error = read_until_error(write(tmp_path, "cut.pcapng", content))
    assert [p[1] for p in packets] == [b"ok"]
    assert isinstance(error, CorruptCapture) and error.offset == len(good)


def test_batches_pcapng_packet_bigger_than_its_block(tmp_path: Path) -> None:
    good = shb("<") + idb("<", 1)
    bad = bytearray(epb("<", 0, 1, b"12345678"))
    bad[20:24] = struct.pack("<I", 9)  # caplen one past the data
    packets, error = read_until_error(write(tmp_path, "big.pcapng", good + bad))
    assert packets == []
    assert isinstance(error, CorruptCapture) and error.offset == len(good)


def test_batches_pcapng_hostile_length_allocates_little(tmp_path: Path) -> None:
    good = shb("<") + idb("<", 1) + epb("<", 0, 1, b"ok")
    hostile = struct.pack("<II", 6, 15 << 20) + b"\x00" * 64
    path = write(tmp_path, "hostile.pcapng", good + hostile)
    tracemalloc.start()
    packets, error = read_until_error(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert isinstance(error, CorruptCapture) and error.offset == len(good)
    assert len(packets) == 1
    assert peak < 2 << 20


def test_batches_pcapng_larger_than_read_buffer_matches_dpkt(tmp_path: Path) -> None:
    path = tmp_path / "big.pcapng"
    sizes = [(i * 7919) % 9000 + 1 for i in range(2000)]  # ~9 MiB
    with path.open("wb") as fh:
        writer = dpkt.pcapng.Writer(fh, snaplen=65535)
        for i, size in enumerate(sizes):
            writer.writepkt(bytes([i % 256]) * size, ts=1_600_000_000 + i / 1000)
    _, packets = read_all(path)
    with path.open("rb") as fh:
        reference = list(dpkt.pcapng.Reader(fh))
    assert [p[1] for p in packets] == [r[1] for r in reference]
    assert [round(p[0] / NS, 3) for p in packets] == [round(r[0], 3) for r in reference]


def test_batches_pcapng_block_bigger_than_read_buffer(tmp_path: Path) -> None:
    huge = block("<", 0x40000BAD, b"\x5a" * (6 << 20))  # skipped custom block
    content = b"".join(
        [shb("<"), idb("<", 1), epb("<", 0, 1, b"one"), huge, epb("<", 0, 2, b"two")]
    )
    capture, packets = read_all(write(tmp_path, "huge.pcapng", content))
    assert [(p[0], p[1]) for p in packets] == [(1000, b"one"), (2000, b"two")]
    assert capture.position == len(content)


@pytest.mark.parametrize(
    "name", [p for p in INTACT if p.endswith(".pcapng")] + ["arkime/bigendian.pcap"]
)
@pytest.mark.parametrize(
    ("max_packets", "max_bytes"), [(1, 1 << 20), (3, 1), (512, 300)]
)
def test_batches_any_batch_limits_give_same_packets(
    name: str, max_packets: int, max_bytes: int
) -> None:
    with open_capture(str(CORPUS / name)) as capture:
        batches = list(capture.batches(max_packets=max_packets, max_bytes=max_bytes))
    assert all(len(b) <= max_packets for b in batches)
    assert all(len(b) == 1 or len(b.data) <= max_bytes for b in batches)
    got = [b.packet(i) for b in batches for i in range(len(b))]
    assert got == [r[1] for r in dpkt_packets(CORPUS / name)]


@pytest.mark.parametrize("writer", [dpkt.pcap.Writer, dpkt.pcapng.Writer])
def test_batches_kept_batches_survive_later_reads(tmp_path: Path, writer: type) -> None:
    path = tmp_path / "kept.cap"
    with path.open("wb") as fh:
        out = writer(fh, snaplen=65535)
        for i in range(4000):  # ~ 12 MiB: the read buffer is refilled
            out.writepkt(bytes([i % 251]) * (3000 + i % 7), ts=1_600_000_000 + i)
    with open_capture(str(path)) as capture:
        batches = list(capture.batches(max_packets=100))
    got = [b.packet(i) for b in batches for i in range(len(b))]
    assert got == [r[1] for r in dpkt_packets(path)]
    assert [int(t) // NS for b in batches for t in b.ts_ns] == [
        1_600_000_000 + i for i in range(4000)
    ]


# --- open errors and expand_paths ----------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a pcap or pcapng"),
        (b"hello, this is a text file and not a capture", "not a pcap or pcapng"),
        (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "shorter than its pcap file header"),
        (b"\x0a\x0d\x0d\x0a\x1c\x00", "shorter than its pcapng section header"),
        (shb("<")[:27], "shorter than its pcapng section header"),
    ],
)
def test_open_capture_not_a_capture_raises(
    tmp_path: Path, content: bytes, match: str
) -> None:
    path = write(tmp_path, "bad.pcap", content)
    with pytest.raises(CaptureError, match=match):
        open_capture(str(path))


def test_open_capture_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="cannot open capture file .*readable"):
        open_capture(str(tmp_path / "missing.pcap"))


def test_expand_paths_directories_by_extension_and_magic(tmp_path: Path) -> None:
    pcap = pcap_file(SAMPLE_RECORDS[:1])
    write(tmp_path, "b.pcap", pcap)
    write(tmp_path, "a.PCAPNG", b"")
    write(tmp_path, "c.dmp", b"")
    write(tmp_path, "capture-no-extension", pcap)
    write(tmp_path, "notes.txt", b"not a capture")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "d.cap", pcap)
    flat = expand_paths([str(tmp_path)], recursive=False)
    names = ["a.PCAPNG", "b.pcap", "c.dmp", "capture-no-extension"]
    assert flat == [str(tmp_path / n) for n in names]
    deep = expand_paths([str(tmp_path)], recursive=True)
    assert deep == flat + [str(tmp_path / "sub" / "d.cap")]


def test_expand_paths_skips_named_pipes(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.pcap")
    os.mkfifo(tmp_path / "pipe")
    write(tmp_path, "real.pcap", pcap_file(SAMPLE_RECORDS[:1]))
    assert expand_paths([str(tmp_path)], True) == [str(tmp_path / "real.pcap")]


def test_expand_paths_empty_directory_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "notes.txt", b"not a capture")
    assert expand_paths([str(tmp_path)], recursive=True) == []
    assert f"no capture files path={tmp_path}" in caplog.text


def test_expand_paths_files_are_kept_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", b"x")
    assert expand_paths([str(path), str(path)], recursive=False) == [str(path)] * 2


def test_expand_paths_missing_path_raises_with_hint(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="does not exist; check the spelling"):
        expand_paths([str(tmp_path / "nope")], recursive=True)


def test_capture_file_close_and_context_manager(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pcap", pcap_file(SAMPLE_RECORDS))
    with open_capture(str(path)) as capture:
        assert capture.size == path.stat().st_size and capture.position == 24
    with pytest.raises(ValueError):
        next(capture.batches())


# --- hypothesis: damaged input never crashes or hangs --------------------------

FUZZ_PCAP = pcap_file(SAMPLE_RECORDS, ">", nano=True)
FUZZ_PCAPNG = two_section_pcapng()[0]


def read_within_bounds(content: bytes, tmp_path: Path) -> list[tuple]:
    """Read a file; only CaptureError may come out, and it must not take long."""
    path = tmp_path / "fuzz.bin"
    path.write_bytes(content)
    started = time.monotonic()
    try:
        packets, _ = read_until_error(path)
    except CaptureError:
        packets = []
    assert time.monotonic() - started < 2.0
    return packets


FUZZ_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ_SETTINGS
@given(base=st.sampled_from([FUZZ_PCAP, FUZZ_PCAPNG]), data=st.data())
def test_batches_truncated_file_yields_prefix(
    tmp_path: Path, base: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(base)))
    whole = read_within_bounds(base, tmp_path)
    part = read_within_bounds(base[:cut], tmp_path)
    assert part == whole[: len(part)]
    assert (part == whole) == (cut == len(base))


@FUZZ_SETTINGS
@given(
    base=st.sampled_from([FUZZ_PCAP, FUZZ_PCAPNG]),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    tail=st.binary(max_size=64),
)
def test_batches_mutated_file_never_crashes(
    tmp_path: Path, base: bytes, edits: list[tuple[int, int]], tail: bytes
) -> None:
    content = bytearray(base + tail)
    for index, value in edits:
        content[index % len(content)] = value
    read_within_bounds(bytes(content), tmp_path)


@pytest.mark.parametrize(
    ("order", "records", "expected"),
    [
        ("<", SAMPLE_RECORDS, True),
        (">", SAMPLE_RECORDS, False),  # headers in the other byte order
        ("<", [(1, 0, b"x" * 80, 60)], False),  # wire length raised to caplen
        ("<", [(1, 1_000_000, b"x" * 60, 60)], False),  # fraction of 1 s or more
    ],
)
def test_batches_little_endian_clean_records_are_kept_as_records(
    tmp_path: Path, order: str, records: list, expected: bool
) -> None:
    """A batch says its data is the pcap records the writer would write only
    when the file's record bytes need no change."""
    content = pcap_file(records, order)
    with open_capture(str(write(tmp_path, "r.pcap", content))) as capture:
        (batch,) = list(capture.batches())
    assert batch.framed is expected
    if expected:
        assert batch.data == content[24:]


def test_open_capture_with_a_limit_reads_as_if_the_file_ended_there(tmp_path):
    path = tmp_path / "grows.pcap"
    with path.open("wb") as fh:
        out = dpkt.pcap.Writer(fh, snaplen=65535)
        for i in range(50):
            out.writepkt(bytes([i]) * (100 + i), ts=1_600_000_000 + i)
    records = dpkt_packets(path)
    # the first 10 records end at 24 + sum(16 + 100 + i)
    boundary = 24 + sum(16 + 100 + i for i in range(10))
    with open_capture(str(path), limit=boundary) as capture:
        got = [b.packet(i) for b in capture.batches(7) for i in range(len(b))]
    assert got == [r[1] for r in records[:10]]
    with (
        open_capture(str(path), limit=boundary + 20) as capture,
        pytest.raises(CorruptCapture, match="ends inside the last record"),
    ):
        for _ in capture.batches():
            pass
    with open_capture(str(path)) as capture:
        assert sum(len(b) for b in capture.batches()) == 50
