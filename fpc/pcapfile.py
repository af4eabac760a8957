"""The PCAP file format on both sides of the disk: headers, reading back, output.

In: packet positions (file number and byte offset of a record header) from SPI
records, and the PCAP files the writer left on disk. Out: the packets stored
there, and the bytes of a pcap or pcapng stream that carries them with their
original timestamps, link types and data. The writer uses the header builders;
`fpc.server` reads and streams on its worker threads.

Record layout of a classic pcap file (all fields in the file's byte order)::

    file header (24 bytes): magic u32, version 2.4, thiszone i32, sigfigs u32,
                            snaplen u32, linktype u32
    record header (16 bytes): ts_sec u32, ts_frac u32 (us or ns by magic),
                              caplen u32, wirelen u32; then caplen data bytes
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from fpc.errors import PcapUnavailable
from fpc.packets import PRECISION_NS, PRECISION_US

FILE_HEADER_BYTES = 24
RECORD_HEADER_BYTES = 16
SNAPLEN = 262144  # the largest caplen libpcap accepts for most link types
MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
MAGIC_BY_PRECISION = {PRECISION_US: MAGIC_US, PRECISION_NS: MAGIC_NS}
PRECISION_BY_MAGIC = {MAGIC_US: PRECISION_US, MAGIC_NS: PRECISION_NS}

CONTENT_TYPE_PCAP = "application/vnd.tcpdump.pcap"
CONTENT_TYPE_PCAPNG = "application/x-pcapng"

_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_IDB = 0x00000001
_PCAPNG_EPB = 0x00000006
_PCAPNG_BYTE_ORDER = 0x1A2B3C4D
_IF_TSRESOL = 9  # pcapng option code


@dataclass(frozen=True)
class StoredPacket:
    """One packet as read back from a PCAP file."""

    ts_ns: int
    wirelen: int
    data: bytes
    linktype: int
    precision: int


@dataclass(frozen=True)
class FileHeader:
    byte_order: str  # "<" or ">"
    precision: int
    snaplen: int
    linktype: int


def pcap_file_header(linktype: int, precision: int) -> bytes:
    """The 24-byte little-endian header of a classic pcap file."""
    magic = MAGIC_BY_PRECISION[precision]
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, SNAPLEN, linktype)


def parse_file_header(raw: bytes, path: str) -> FileHeader:
    """Decode a classic pcap file header; PcapUnavailable when it is not one."""
    if len(raw) < FILE_HEADER_BYTES:
        raise PcapUnavailable(
            f"PCAP file {path} is shorter than its 24-byte header; "
            "the file was truncated or is still being created"
        )
    for order in ("<", ">"):
        magic = struct.unpack_from(order + "I", raw)[0]
        if magic in PRECISION_BY_MAGIC:
            _, _, _, _, snaplen, linktype = struct.unpack_from(order + "HHiIII", raw, 4)
            return FileHeader(order, PRECISION_BY_MAGIC[magic], snaplen, linktype)
    raise PcapUnavailable(
        f"PCAP file {path} does not start with a pcap magic number; "
        "it was overwritten or is not a file fpc wrote"
    )


class PcapFileReader:
    """Reads single records of one PCAP file by packet position."""

    def __init__(self, path: str, max_caplen: int = SNAPLEN) -> None:
        self.path = path
        self.max_caplen = max_caplen
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise PcapUnavailable(
                f"cannot open PCAP file {path} ({exc.strerror}); "
                "it was deleted (aged out) or its permissions changed"
            ) from exc
        try:
            self.header = parse_file_header(os.pread(self._fd, 24, 0), path)
        except BaseException:
            os.close(self._fd)
            raise

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PcapFileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read_header(self, pos: int, size: int) -> tuple[int, int, int]:
        """(ts_ns, caplen, wirelen) of the record at `pos`, checked against `size`."""
        if pos < FILE_HEADER_BYTES or pos + RECORD_HEADER_BYTES > size:
            self._damaged(pos, f"record header outside the file ({size} bytes)")
        raw = os.pread(self._fd, RECORD_HEADER_BYTES, pos)
        if len(raw) != RECORD_HEADER_BYTES:
            self._damaged(pos, "record header cut short")
        sec, frac, caplen, wirelen = struct.unpack(self.header.byte_order + "IIII", raw)
        if caplen > self.max_caplen:
            self._damaged(pos, f"caplen {caplen} exceeds {self.max_caplen}")
        if pos + RECORD_HEADER_BYTES + caplen > size:
            self._damaged(pos, f"caplen {caplen} runs past the end of the file")
        scale = 1000 if self.header.precision == PRECISION_US else 1
        return sec * 1_000_000_000 + frac * scale, caplen, wirelen

    def read_packet(self, pos: int, size: int | None = None) -> StoredPacket:
        """The packet whose record header starts at byte `pos`."""
        size = self.size() if size is None else size
        ts_ns, caplen, wirelen = self.read_header(pos, size)
        data = os.pread(self._fd, caplen, pos + RECORD_HEADER_BYTES)
        if len(data) != caplen:
            self._damaged(pos, "packet data cut short")
        return StoredPacket(
            ts_ns, wirelen, data, self.header.linktype, self.header.precision
        )

    def _damaged(self, pos: int, reason: str) -> None:
        raise PcapUnavailable(
            f"PCAP file {self.path} has a damaged record at byte {pos}: {reason}; "
            "the file was truncated or overwritten, or the SPI record points "
            "at the wrong position"
        )


@dataclass(frozen=True)
class Tail:
    """The whole records of a file from some start: where they end, how many."""

    end: int  # byte offset just past the last whole record
    packets: int
    last_ts_ns: int | None  # time of the last whole record, None if none


def find_tail(path: str, start: int = FILE_HEADER_BYTES) -> Tail:
    """Walk the records from `start` (a record boundary) to the last whole one."""
    with PcapFileReader(path) as reader:
        size = reader.size()
        pos, packets, last_ts = start, 0, None
        while pos + RECORD_HEADER_BYTES <= size:
            try:
                ts_ns, caplen, _ = reader.read_header(pos, size)
            except PcapUnavailable:
                break  # a record cut short (or garbage): the tail ends here
            pos += RECORD_HEADER_BYTES + caplen
            packets += 1
            last_ts = ts_ns
        return Tail(pos, packets, last_ts)


def read_packets(path: str, positions: Iterable[int]) -> list[StoredPacket]:
    """The packets at `positions` of one PCAP file, in the order given."""
    with PcapFileReader(path) as reader:
        size = reader.size()
        return [reader.read_packet(pos, size) for pos in positions]


class PcapOutput:
    """Classic pcap output: every packet shares one link type and precision."""

    content_type = CONTENT_TYPE_PCAP
    suffix = "pcap"

    def __init__(self, linktype: int, precision: int) -> None:
        self.linktype = linktype
        self.precision = precision

    def header(self) -> bytes:
        return pcap_file_header(self.linktype, self.precision)

    def encode(self, pkt: StoredPacket) -> bytes:
        sec, frac = divmod(pkt.ts_ns, 1_000_000_000)
        if self.precision == PRECISION_US:
            frac //= 1000
        hdr = struct.pack("<IIII", sec & 0xFFFFFFFF, frac, len(pkt.data), pkt.wirelen)
        return hdr + pkt.data


class PcapngOutput:
    """pcapng output: one interface (IDB) per (link type, precision) pair."""

    content_type = CONTENT_TYPE_PCAPNG
    suffix = "pcapng"

    def __init__(self, kinds: Iterable[tuple[int, int]]) -> None:
        self.interfaces = {kind: i for i, kind in enumerate(sorted(set(kinds)))}

    def header(self) -> bytes:
        shb_body = struct.pack("<IHHq", _PCAPNG_BYTE_ORDER, 1, 0, -1)
        blocks = [_pcapng_block(_PCAPNG_SHB, shb_body)]
        for linktype, precision in self.interfaces:
            tsresol = struct.pack("<HHB3x", _IF_TSRESOL, 1, precision)
            body = struct.pack("<HHI", linktype, 0, SNAPLEN) + tsresol + bytes(4)
            blocks.append(_pcapng_block(_PCAPNG_IDB, body))
        return b"".join(blocks)

    def encode(self, pkt: StoredPacket) -> bytes:
        if_id = self.interfaces[(pkt.linktype, pkt.precision)]
        ts = pkt.ts_ns if pkt.precision == PRECISION_NS else pkt.ts_ns // 1000
        caplen = len(pkt.data)
        pad = bytes(-caplen % 4)
        head = struct.pack(
            "<IIIII", if_id, ts >> 32, ts & 0xFFFFFFFF, caplen, pkt.wirelen
        )
        return _pcapng_block(_PCAPNG_EPB, head + pkt.data + pad)


def _pcapng_block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def make_output(kinds: Iterable[tuple[int, int]]) -> PcapOutput | PcapngOutput:
    """pcap when every packet shares (link type, precision), else pcapng."""
    distinct = set(kinds)
    if len(distinct) == 1:
        return PcapOutput(*distinct.pop())
    # An empty stream still gets a valid file: an Ethernet pcap with no records.
    if not distinct:
        return PcapOutput(1, PRECISION_US)
    return PcapngOutput(distinct)
