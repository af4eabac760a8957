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

pcapng output (little-endian): a section header block, one interface block per
(link type, precision) with option if_tsresol = 6 or 9, then per packet::

    enhanced packet block: type 6 u32, block length u32, interface id u32,
        ts_high u32, ts_low u32, caplen u32, wirelen u32, data padded to 4
        bytes, block length u32
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

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
_HEADER_CHUNK = 65536  # record headers gathered per numpy step
_HEADER_SPAN = np.arange(RECORD_HEADER_BYTES, dtype=np.int64)


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

    def read_headers(self, pos: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(ts_ns, caplen) of the records at `pos` (int64), checked against `size`."""
        outside = (pos < FILE_HEADER_BYTES) | (pos + RECORD_HEADER_BYTES > size)
        if outside.any():
            self._damaged(
                int(pos[outside][0]), f"record header outside the file ({size} bytes)"
            )
        raw = np.empty((len(pos), RECORD_HEADER_BYTES), dtype=np.uint8)
        with mmap.mmap(self._fd, size, prot=mmap.PROT_READ) as mm:
            view = np.frombuffer(mm, dtype=np.uint8)
            try:
                for lo in range(0, len(pos), _HEADER_CHUNK):
                    at = pos[lo : lo + _HEADER_CHUNK, None] + _HEADER_SPAN
                    raw[lo : lo + _HEADER_CHUNK] = view[at]
            finally:
                del view  # the map cannot close while numpy holds it
        fields = raw.view(self.header.byte_order + "u4").astype(np.int64)
        caplen = fields[:, 2]
        self._check_caplen(pos, caplen, size)
        scale = 1000 if self.header.precision == PRECISION_US else 1
        return fields[:, 0] * 1_000_000_000 + fields[:, 1] * scale, caplen

    def _check_caplen(self, pos: np.ndarray, caplen: np.ndarray, size: int) -> None:
        big = caplen > self.max_caplen
        if big.any():
            i = int(np.argmax(big))
            self._damaged(int(pos[i]), f"caplen {caplen[i]} exceeds {self.max_caplen}")
        past = pos + RECORD_HEADER_BYTES + caplen > size
        if past.any():
            i = int(np.argmax(past))
            self._damaged(
                int(pos[i]), f"caplen {caplen[i]} runs past the end of the file"
            )

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

    def read_raw(self, start: int, end: int) -> bytes:
        """Bytes start..end-1 of the file: records whose headers were checked."""
        raw = os.pread(self._fd, end - start, start)
        if len(raw) != end - start:
            self._damaged(start, "file shrank while being read")
        return raw

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


FileKey = tuple[str, int]  # (node, file number)


@dataclass
class PacketList:
    """Packet positions as parallel arrays; file_idx points into `keys`."""

    keys: list[FileKey]
    file_idx: np.ndarray  # int64
    pos: np.ndarray  # int64, packet positions
    caplen: np.ndarray  # int64, expected caplen, -1 where unknown

    def __len__(self) -> int:
        return len(self.pos)

    def unique(self) -> PacketList:
        """Each packet once, at its first place in the list."""
        combined = self.file_idx << 40 | self.pos  # positions stay below 1 TiB
        _, first = np.unique(combined, return_index=True)
        keep = np.sort(first)
        return PacketList(
            self.keys, self.file_idx[keep], self.pos[keep], self.caplen[keep]
        )


class PacketPlan:
    """The packets of one response, checked and ordered before the first byte is sent.

    Opens each file once and checks every record header, so that a missing or
    damaged file is reported before streaming starts, not by a cut-off stream.
    `resolve` turns a file key into a path that is safe to open and the number
    of bytes of it to trust (None: all; for an open file, what was flushed).
    """

    def __init__(
        self, packets: PacketList, resolve: Callable[[FileKey], tuple[str, int | None]]
    ) -> None:
        self.packets = packets
        self.resolve = resolve
        self.readers: list[PcapFileReader] = []
        self.sizes: list[int] = []
        self.ts_ns = np.zeros(len(packets), dtype=np.int64)
        self.caplen = np.zeros(len(packets), dtype=np.int64)

    def build(self, by_time: bool) -> PacketPlan:
        """Read every header; sort by (time, file, position) if `by_time`."""
        by_file = np.argsort(self.packets.file_idx, kind="stable")
        keys = self.packets.keys
        bounds = np.searchsorted(
            self.packets.file_idx[by_file], np.arange(len(keys) + 1)
        )
        try:
            for k, key in enumerate(keys):
                self._check_file(k, key, by_file[bounds[k] : bounds[k + 1]])
        except BaseException:
            self.close()
            raise
        if by_time:
            p = self.packets
            order = np.lexsort((p.pos, p.file_idx, self.ts_ns))
            self.packets = PacketList(
                p.keys, p.file_idx[order], p.pos[order], p.caplen[order]
            )
            self.ts_ns, self.caplen = self.ts_ns[order], self.caplen[order]
        return self

    def _check_file(self, k: int, key: FileKey, sel: np.ndarray) -> None:
        # TODO: files stay open until the response ends; a merged query over
        # more files than the descriptor limit fails with PcapUnavailable.
        path, trusted = self.resolve(key)
        reader = PcapFileReader(path)
        self.readers.append(reader)
        size = reader.size()
        self.sizes.append(size if trusted is None else min(size, trusted))
        pos = self.packets.pos[sel]
        ts_ns, caplen = reader.read_headers(pos, self.sizes[k])
        want = self.packets.caplen[sel]
        wrong = (want >= 0) & (want != caplen)
        if wrong.any():
            i = int(np.argmax(wrong))
            raise PcapUnavailable(
                f"PCAP file {reader.path} holds a {caplen[i]}-byte packet at byte "
                f"{pos[i]}, the SPI record says {want[i]}; the file was replaced "
                "or the record points at the wrong position"
            )
        self.ts_ns[sel], self.caplen[sel] = ts_ns, caplen

    def kinds(self) -> set[tuple[int, int]]:
        return {(r.header.linktype, r.header.precision) for r in self.readers}

    def encode(self, out: PcapOutput | PcapngOutput, lo: int, hi: int) -> bytes:
        """Packets lo..hi-1 of the plan in the output format."""
        if isinstance(out, PcapOutput) and self._records_are_output():
            return self._copy_records(lo, hi)
        p = self.packets
        parts = []
        for k, pos in zip(
            p.file_idx[lo:hi].tolist(), p.pos[lo:hi].tolist(), strict=True
        ):
            parts.append(out.encode(self.readers[k].read_packet(pos, self.sizes[k])))
        return b"".join(parts)

    def _records_are_output(self) -> bool:
        # Files fpc wrote are little-endian like the output, so for a pcap
        # response their record bytes are the response's record bytes.
        return all(r.header.byte_order == "<" for r in self.readers)

    def _copy_records(self, lo: int, hi: int) -> bytes:
        """Raw records lo..hi-1; records adjacent in a file are read in one call."""
        k, pos = self.packets.file_idx[lo:hi], self.packets.pos[lo:hi]
        if len(k) == 0:
            return b""
        ends = pos + RECORD_HEADER_BYTES + self.caplen[lo:hi]
        joined = (k[1:] == k[:-1]) & (pos[1:] == ends[:-1])
        first = np.concatenate(([0], np.flatnonzero(~joined) + 1))
        last = np.concatenate((first[1:], [len(k)])) - 1
        return b"".join(
            self.readers[int(k[a])].read_raw(int(pos[a]), int(ends[b]))
            for a, b in zip(first.tolist(), last.tolist(), strict=True)
        )

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
        self.readers.clear()
