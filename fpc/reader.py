"""Stage 1 of the pipeline for offline input: read capture files into batches.

In: paths to classic pcap or pcapng files (from the command line, `-r`). Out:
`PacketBatch` objects for the decoder, in file order. Runs on the processing
thread. The format code is ours, not libpcap's, so that every file keeps its
nanoseconds and a pcapng file may mix link types across its interfaces.

Classic pcap record (after a 24-byte file header)::

    0        4        8        12       16
    +--------+--------+--------+--------+------------------+
    | ts_sec | ts_frac| caplen | wirelen| caplen bytes ... |
    +--------+--------+--------+--------+------------------+

pcapng block (every block, 32-bit aligned)::

    0      4             8                    len-4  len
    +------+-------------+------- body --------+------+
    | type | block len   | ...                 | len  |
    +------+-------------+---------------------+------+

Enhanced Packet Block body (the obsolete Packet Block has a 16-bit
interface id and a 16-bit drop count in the first word)::

    8          12        16        20       24        28
    +----------+---------+---------+--------+---------+---------------+---------+
    | iface id | ts high | ts low  | caplen | wirelen | data, padded  | options |
    +----------+---------+---------+--------+---------+---------------+---------+

Damage is never fatal to the records before it: every good record is yielded,
then `batches()` raises `CorruptCapture` with the byte offset of the damage.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from io import BufferedReader
from types import TracebackType

import numpy as np

from fpc import _fastpath
from fpc.errors import CaptureError, CorruptCapture
from fpc.packets import PRECISION_NS, PRECISION_US, PacketBatch

__all__ = ["CaptureFile", "PcapFile", "PcapngFile", "expand_paths", "open_capture"]

logger = logging.getLogger(__name__)

CAPTURE_EXTENSIONS = (".pcap", ".pcapng", ".cap", ".dmp")
CHUNK_BYTES = 8 << 20  # read buffer size; grown only for a bigger pcapng block
MIN_BUFFER_BYTES = 64 << 10
MAX_CAPLEN_BYTES = 256 << 10  # largest packet a classic pcap record may hold
MAX_BLOCK_BYTES = 16 << 20  # largest pcapng block we accept
PCAP_HEADER_BYTES = 24
PCAP_RECORD_BYTES = 16
PCAPNG_MIN_BLOCK_BYTES = 12
PCAPNG_MIN_SHB_BYTES = 28

# Classic pcap magic (as read little-endian) -> (byte order, ns per fraction unit).
# TODO: the modified pcap format (magic a1b2cd34, 24-byte record headers) is
# not read because no current tool writes it; such files fail at open time.
PCAP_MAGICS = {
    0xA1B2C3D4: ("<", 1000),
    0xD4C3B2A1: (">", 1000),
    0xA1B23C4D: ("<", 1),
    0x4D3CB2A1: (">", 1),
}
PCAPNG_SHB = 0x0A0D0D0A  # the same value in either byte order
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_IDB = 1
PCAPNG_PB = 2  # obsolete Packet Block
PCAPNG_SPB = 3
PCAPNG_EPB = 6
OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def expand_paths(paths: list[str], recursive: bool) -> list[str]:
    """Return capture files: files as given, directories expanded in name order."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            found.extend(_list_directory(path, recursive))
        elif os.path.exists(path):
            found.append(path)
        else:
            raise CaptureError(
                f"capture path {path} does not exist; check the spelling "
                "or pass an existing pcap/pcapng file or directory to -r"
            )
    return found


def _list_directory(directory: str, recursive: bool) -> list[str]:
    """Capture files in `directory` (and below it with `recursive`), sorted."""
    found: list[str] = []
    for root, dirs, files in os.walk(directory):
        if not recursive:
            dirs.clear()
        found.extend(
            os.path.join(root, name)
            for name in files
            if _looks_like_capture(os.path.join(root, name))
        )
    found.sort()
    if not found:
        logger.warning("capture directory has no capture files path=%s", directory)
    logger.debug("capture directory listed path=%s files=%d", directory, len(found))
    return found


def _looks_like_capture(path: str) -> bool:
    """True for a capture file by extension, or else by its magic number.

    Only regular files count: opening a named pipe found in a directory
    would block.
    """
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(CAPTURE_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    if len(head) < 4:
        return False
    (magic,) = struct.unpack("<I", head)
    return magic in PCAP_MAGICS or magic == PCAPNG_SHB


def open_capture(path: str, limit: int | None = None) -> CaptureFile:
    """Open a classic pcap or pcapng file; CaptureError if it is neither.
    With `limit`, bytes of the file past `limit` are not read (as if the file
    ended there)."""
    try:
        fh = open(path, "rb")  # closed by CaptureFile.close()
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    try:
        size = os.fstat(fh.fileno()).st_size
        head_bytes = PCAPNG_MIN_SHB_BYTES
        if limit is not None:
            size, head_bytes = min(size, limit), min(head_bytes, limit)
        capture = _open_format(path, fh, size, fh.read(head_bytes))
        capture.limit = limit
        return capture
    except OSError as exc:
        fh.close()
        raise _unreadable(path, exc) from exc
    except CaptureError:
        fh.close()
        raise


def _unreadable(path: str, exc: OSError) -> CaptureError:
    return CaptureError(
        f"cannot open capture file {path} ({exc.strerror}); "
        "check that it exists and is readable"
    )


def _open_format(path: str, fh: BufferedReader, size: int, head: bytes) -> CaptureFile:
    """Pick the reader class from the first bytes of the file."""
    magic = struct.unpack_from("<I", head)[0] if len(head) >= 4 else None
    if magic == PCAPNG_SHB:
        if len(head) < PCAPNG_MIN_SHB_BYTES:
            raise _short_file(path, len(head), "pcapng section header")
        return PcapngFile(path, fh, size, head)
    if magic in PCAP_MAGICS:
        if len(head) < PCAP_HEADER_BYTES:
            raise _short_file(path, len(head), "pcap file header")
        return PcapFile(path, fh, size, head)
    raise CaptureError(
        f"capture file {path} is not a pcap or pcapng file "
        f"(first bytes {head[:4].hex() or 'none'}); "
        "pass a file written by tcpdump, dumpcap or fpc"
    )


def _short_file(path: str, got: int, what: str) -> CaptureError:
    return CaptureError(
        f"capture file {path} is only {got} bytes, shorter than its {what}; "
        "the file is cut short, copy it again from its source"
    )


@dataclass
class _Columns:
    """Per-packet values of one batch, gathered before they become arrays."""

    offset: list[int]
    caplen: list[int]
    wirelen: list[int]
    ts_ns: list[int]
    linktype: list[int]
    precision: list[int]
    run: _EpbRun | None = None  # set instead of the lists for a run of EPBs
    records: _Records | None = None  # instead of the lists for classic pcap

    def found(self) -> bool:
        return bool(self.offset) or self.run is not None or self.records is not None


@dataclass
class _Records:
    """Classic pcap records found by `_fastpath.scan_pcap`: each one's start in
    the read buffer and its header fields, in the file's byte order."""

    offset: np.ndarray  # int64
    sec: np.ndarray  # uint32, as every array below
    frac: np.ndarray
    caplen: np.ndarray
    wirelen: np.ndarray


class CaptureFile:
    """A capture file being read; `batches()` yields its packets in order.

    `packets` and `bytes_read` (captured packet bytes) count what was
    yielded so far; `position` is the file offset of the next unread record
    and `size` the file size, for a progress bar. `errors` holds a message
    for each kind of damage seen, tolerated or not; `anomalies` counts the
    tolerated kinds (records read, with a value fixed or kept as it was).
    """

    format = ""

    def __init__(self, path: str, fh: BufferedReader, size: int, head: bytes) -> None:
        self.path = path
        self.size = size
        self.packets = 0
        self.bytes_read = 0
        self.errors: list[str] = []
        self.anomalies: dict[str, int] = {}  # tolerated oddities, by kind
        self._fh = fh
        # One reused read buffer: _buf[_pos:_end] holds unread bytes of the file.
        self._buf = bytearray(max(min(CHUNK_BYTES, size), MIN_BUFFER_BYTES))
        self._buf[: len(head)] = head
        self._base = 0  # file offset of _buf[0]
        self._pos = 0  # next unread byte in _buf
        self._end = len(head)  # end of the bytes read into _buf
        self._eof = False
        self._failure: CorruptCapture | None = None  # raised again if called again
        self.limit: int | None = None  # file bytes past this are not read
        logger.debug(
            "capture file opened path=%s format=%s size=%d", path, self.format, size
        )

    @property
    def position(self) -> int:
        return self._base + self._pos

    def batches(
        self, max_packets: int = 512, max_bytes: int = 1 << 20
    ) -> Generator[PacketBatch, None, None]:
        """Yield batches of at most `max_packets` packets and about `max_bytes`."""
        if max_packets < 1 or max_bytes < 1:
            raise ValueError("max_packets and max_bytes must be at least 1")
        while True:
            batch = self._next_batch(max_packets, max_bytes)
            if batch is None:
                break
            self.packets += len(batch)
            self.bytes_read += int(batch.caplen.sum())
            yield batch
        logger.info(
            "capture file read path=%s format=%s packets=%d bytes=%d anomalies=%d",
            self.path,
            self.format,
            self.packets,
            self.bytes_read,
            sum(self.anomalies.values()),
        )

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _next_batch(self, max_packets: int, max_bytes: int) -> PacketBatch | None:
        """Scan records from the buffer, refilling it; None at a clean end."""
        if self._failure is not None:
            raise self._failure
        while True:
            start = self._pos
            cols = _Columns([], [], [], [], [], [])
            reason = self._scan(cols, max_packets, max_bytes)
            if cols.found():
                # Damage found after good records is met again on the next call.
                return self._build(start, cols)
            if reason is not None:
                raise self._corrupt(self.position, reason)
            if self._pos > start:
                continue  # consumed records that carry no packet
            need = self._record_need()
            if not self._fill(need):
                self._end_of_file(need)
                return None

    def _end_of_file(self, need: int) -> None:
        """Clean end if nothing is left; else the last record is cut short."""
        left = self._end - self._pos
        if left:
            raise self._corrupt(
                self.position,
                f"the file ends inside the last record ({left} of at least "
                f"{need} bytes present)",
            )

    def _scan(self, cols: _Columns, max_packets: int, max_bytes: int) -> str | None:
        """Consume whole records at `_pos` into `cols`; the damage found, if any."""
        raise NotImplementedError

    def _record_need(self) -> int:
        """Bytes the record at `_pos` needs (its header's size if not yet known)."""
        raise NotImplementedError

    def _build(self, start: int, cols: _Columns) -> PacketBatch:
        """Turn the columns of records from `start` to `_pos` into a batch."""
        caplen = np.array(cols.caplen, dtype=np.uint32)
        wirelen = np.array(cols.wirelen, dtype=np.uint32)
        self._check_wirelen(caplen, wirelen, start)
        return PacketBatch(
            data=self._slice(start),
            offset=np.array(cols.offset, dtype=np.int64) - start,
            caplen=caplen,
            wirelen=np.maximum(wirelen, caplen),
            ts_ns=self._ts_array(cols.ts_ns),
            linktype=np.array(cols.linktype, dtype=np.uint16),
            precision=np.array(cols.precision, dtype=np.uint8),
        )

    def _check_wirelen(
        self, caplen: np.ndarray, wirelen: np.ndarray, start: int
    ) -> None:
        self._note(
            "wirelen_below_caplen",
            int(np.count_nonzero(wirelen < caplen)),
            f"a record after byte {self._base + start} has a wire length below "
            "its captured length; the wire length was raised to the captured one",
        )

    def _ts_array(self, ts_ns: list[int]) -> np.ndarray:
        """int64 nanoseconds; values past the int64 range are clamped, counted."""
        try:
            return np.array(ts_ns, dtype=np.int64)
        except OverflowError:
            bad = sum(1 for t in ts_ns if not INT64_MIN <= t <= INT64_MAX)
            self._note(
                "ts_out_of_range",
                bad,
                "a timestamp lies outside the years 1677 to 2262; it was clamped",
            )
            clamped = [min(max(t, INT64_MIN), INT64_MAX) for t in ts_ns]
            return np.array(clamped, dtype=np.int64)

    def _fill(self, need: int) -> bool:
        """Make `need` bytes available at `_pos`; False if the file ends first."""
        avail = self._end - self._pos
        if avail >= need:
            return True
        if self._eof or not self._file_has(need):
            return False
        if need > len(self._buf):
            grown = bytearray(need + CHUNK_BYTES)
            grown[:avail] = self._buf[self._pos : self._end]
            self._buf = grown
        else:
            self._buf[:avail] = self._buf[self._pos : self._end]
        self._base += self._pos
        self._pos, self._end = 0, avail
        while self._end < need and not self._eof:
            self._read_more()
        return self._end >= need

    def _file_has(self, need: int) -> bool:
        """False if a regular file is too short for `need` more bytes at `_pos`.

        Checked before the buffer grows, so a hostile length field never
        makes us allocate more than the file holds.
        """
        try:
            info = os.fstat(self._fh.fileno())
        except OSError:
            return True  # the read that follows reports the problem
        if not stat.S_ISREG(info.st_mode):
            return True
        file_size = info.st_size
        if self.limit is not None:
            file_size = min(file_size, self.limit)
        self.size = max(self.size, file_size)
        return self._base + self._pos + need <= file_size

    def _read_more(self) -> None:
        """Read into the free end of the buffer; sets `_eof` at the file end."""
        stop = len(self._buf)
        if self.limit is not None:
            stop = min(stop, max(self._end, self.limit - self._base))
        count = 0
        try:
            with memoryview(self._buf) as view:
                if stop > self._end:
                    count = self._fh.readinto(view[self._end : stop])
        except OSError as exc:
            raise CaptureError(
                f"cannot read capture file {self.path} at byte "
                f"{self._base + self._end} ({exc.strerror}); "
                "check the disk and the file permissions"
            ) from exc
        self._eof = not count
        self._end += count or 0

    def _slice(self, start: int) -> bytes:
        """Copy of the buffer from `start` to `_pos`, for a batch to keep."""
        with memoryview(self._buf) as view:
            return bytes(view[start : self._pos])

    def _corrupt(self, offset: int, reason: str) -> CorruptCapture:
        """Record damage at file offset `offset` and build the error to raise."""
        error = CorruptCapture(self.path, offset, reason)
        self._failure = error
        self.errors.append(str(error))
        # The caller reports the raised error; this line is only for tracing.
        logger.debug(
            "capture file corrupt path=%s offset=%d reason=%s packets=%d",
            self.path,
            offset,
            reason,
            self.packets,
        )
        return error

    def _note(self, kind: str, count: int, message: str) -> None:
        """Count a tolerated oddity; the first of each kind goes into `errors`."""
        if not count:
            return
        if kind not in self.anomalies:
            self.errors.append(f"capture file {self.path}: {message}")
            self.anomalies[kind] = 0
        self.anomalies[kind] += count


class PcapFile(CaptureFile):
    """Classic pcap: one link type, microsecond or nanosecond timestamps."""

    format = "pcap"

    def __init__(self, path: str, fh: BufferedReader, size: int, head: bytes) -> None:
        super().__init__(path, fh, size, head)
        order, self._frac_ns = PCAP_MAGICS[struct.unpack_from("<I", head)[0]]
        # The time zone and accuracy fields are 0 in practice and ignored.
        fields = struct.unpack_from(order + "HHiIII", head, 4)
        self.version = (fields[0], fields[1])
        self.snaplen = fields[4]
        # The upper bits of the link type field carry FCS information.
        self.linktype = fields[5] & 0xFFFF
        self.precision = PRECISION_NS if self._frac_ns == 1 else PRECISION_US
        self.max_caplen = min(self.snaplen or MAX_CAPLEN_BYTES, MAX_CAPLEN_BYTES)
        self._caplen_at = struct.Struct(order + "I").unpack_from
        self._little = order == "<"
        self._swap = self._little != (sys.byteorder == "little")
        self._pos = PCAP_HEADER_BYTES
        self._version_checked = False

    def _scan(self, cols: _Columns, max_packets: int, max_bytes: int) -> str | None:
        """Find whole records in C; their starts and headers go into `cols`."""
        if not self._version_checked:
            self._check_version()
        room = min(max_packets, (self._end - self._pos) // PCAP_RECORD_BYTES)
        if room < 1:
            return None  # not even a record header is here
        found = _Records(
            np.empty(room, dtype=np.int64),
            *(np.empty(room, dtype=np.uint32) for _ in range(4)),
        )
        n, self._pos, bad = _fastpath.scan_pcap(
            self._buf, self._pos, self._end, max_bytes, self.max_caplen,
            self._swap, found.offset, found.sec, found.frac, found.caplen,
            found.wirelen,
        )  # fmt: skip
        if n:
            cols.records = _Records(
                found.offset[:n], found.sec[:n], found.frac[:n], found.caplen[:n],
                found.wirelen[:n],
            )  # fmt: skip
        if bad < 0:
            return None
        return f"record caplen {bad} exceeds the limit of {self.max_caplen} bytes"

    def _check_version(self) -> None:
        if self.version[0] != 2:
            raise self._corrupt(
                4, f"pcap version {self.version[0]}.{self.version[1]} is not 2.x"
            )
        self._version_checked = True

    def _record_need(self) -> int:
        if self._end - self._pos < PCAP_RECORD_BYTES:
            return PCAP_RECORD_BYTES
        caplen = self._caplen_at(self._buf, self._pos + 8)[0]
        return PCAP_RECORD_BYTES + int(caplen)

    def _build(self, start: int, cols: _Columns) -> PacketBatch:
        """A batch of the records `_scan` found."""
        found = cols.records
        assert found is not None
        caplen, wirelen = found.caplen, found.wirelen
        self._check_wirelen(caplen, wirelen, start)
        ts_ns, frac_ok = self._timestamps(found.sec, found.frac, start)
        n = len(caplen)
        return PacketBatch(
            data=self._slice(start),
            offset=found.offset + (PCAP_RECORD_BYTES - start),
            caplen=caplen,
            wirelen=np.maximum(wirelen, caplen),
            ts_ns=ts_ns,
            linktype=np.full(n, self.linktype, dtype=np.uint16),
            precision=np.full(n, self.precision, dtype=np.uint8),
            # Records of a little-endian file with nothing to fix are what
            # the PCAP writer would write for these packets.
            framed=self._little and frac_ok and bool((wirelen >= caplen).all()),
        )

    def _timestamps(
        self, sec: np.ndarray, frac: np.ndarray, start: int
    ) -> tuple[np.ndarray, bool]:
        """Nanoseconds from unsigned seconds and the fraction (us or ns); and
        whether every fraction is below one second."""
        frac_max = 1_000_000_000 // self._frac_ns
        too_big = int(np.count_nonzero(frac >= frac_max))
        self._note(
            "ts_fraction_too_big",
            too_big,
            f"a record after byte {self._base + start} has a fraction of a "
            "second of 1 s or more; it was kept as written",
        )
        ns = sec.astype(np.int64) * 1_000_000_000
        return ns + frac.astype(np.int64) * self._frac_ns, not too_big


_EPB_BYTE_INDEX = np.arange(28, dtype=np.int64)  # block header and EPB fields
_U32_BYTE_INDEX = np.arange(4, dtype=np.int64)


class _Damage(Exception):
    """A pcapng block that cannot be read; becomes a CorruptCapture."""


@dataclass(frozen=True)
class _Layout:
    """struct formats of pcapng fields in one byte order."""

    u32: struct.Struct
    head: struct.Struct  # block type, block total length
    shb: struct.Struct  # byte-order magic, major, minor, section length
    idb: struct.Struct  # linktype, reserved, snaplen
    epb: struct.Struct  # interface id, ts high, ts low, caplen, wirelen
    pb: struct.Struct  # interface id, drops, ts high, ts low, caplen, wirelen
    opt: struct.Struct  # option code, option length
    i64: struct.Struct
    word: np.dtype  # uint32 in this byte order, for numpy


def _layout(order: str) -> _Layout:
    def fmt(fields: str) -> struct.Struct:
        return struct.Struct(order + fields)

    return _Layout(
        u32=fmt("I"),
        head=fmt("II"),
        shb=fmt("IHHq"),
        idb=fmt("HHI"),
        epb=fmt("IIIII"),
        pb=fmt("HHIIII"),
        opt=fmt("HH"),
        i64=fmt("q"),
        word=np.dtype(order + "u4"),
    )


@dataclass
class _EpbRun:
    """Consecutive sound EPBs of one section, decoded with numpy."""

    data_start: np.ndarray  # int64, buffer offset of each packet's data
    caplen: np.ndarray
    wirelen: np.ndarray
    ts_ns: np.ndarray
    linktype: np.ndarray
    precision: np.ndarray


_LAYOUTS = {"<": _layout("<"), ">": _layout(">")}


@dataclass(frozen=True)
class _Interface:
    """What an Interface Description Block says about its packets."""

    linktype: int
    snaplen: int
    precision: int
    to_ns: Callable[[int], int]  # raw 64-bit timestamp -> ns since the epoch
    mult: int  # ns per raw unit when that is a whole number, else 0
    offset_ns: int  # if_tsoffset


def _make_interface(
    linktype: int, snaplen: int, tsresol: int, tsoffset_s: int
) -> _Interface:
    """An interface whose timestamps count units of 10**-n or 2**-n seconds."""
    offset_ns = tsoffset_s * 1_000_000_000
    exp = tsresol & 0x7F
    if tsresol & 0x80:
        finer = (1 << exp) > 1_000_000
        return _Interface(
            linktype,
            snaplen,
            PRECISION_NS if finer else PRECISION_US,
            lambda raw: ((raw * 1_000_000_000) >> exp) + offset_ns,
            0,
            offset_ns,
        )
    precision = PRECISION_NS if exp > 6 else PRECISION_US
    if exp <= 9:
        mult = 10 ** (9 - exp)
        return _Interface(
            linktype,
            snaplen,
            precision,
            lambda raw: raw * mult + offset_ns,
            mult,
            offset_ns,
        )
    div = 10 ** (exp - 9)
    return _Interface(
        linktype, snaplen, precision, lambda raw: raw // div + offset_ns, 0, offset_ns
    )


class PcapngFile(CaptureFile):
    """pcapng: sections, interfaces with their own link type and resolution."""

    format = "pcapng"

    def __init__(self, path: str, fh: BufferedReader, size: int, head: bytes) -> None:
        super().__init__(path, fh, size, head)
        self._lay = _LAYOUTS["<"]
        self.interfaces: list[_Interface] = []
        self._last_ts_ns = 0  # for Simple Packet Blocks, which carry none

    def _scan(self, cols: _Columns, max_packets: int, max_bytes: int) -> str | None:
        """A run of EPBs, or else other blocks one at a time.

        A run of sound EPBs makes a batch of its own. Other blocks go through
        the general path, which also reports the damage of any block.
        """
        cols.run = self._scan_epb_run(max_packets, max_bytes)
        if cols.run is not None:
            return None
        buf, pos, end = self._buf, self._pos, self._end
        stop = pos + max_bytes
        reason = None
        while len(cols.offset) < max_packets and pos + PCAPNG_MIN_BLOCK_BYTES <= end:
            try:
                btype, blen, lay = self._block_head(buf, pos)
                after = pos + blen
                if after > end or (after > stop and cols.offset):
                    break
                if btype == PCAPNG_EPB and pos > self._pos:
                    break  # left for the next run
                self._read_block(buf, pos, btype, blen, lay, cols)
            except _Damage as exc:
                reason = str(exc)
                break
            pos = after
        self._pos = pos
        if cols.ts_ns:
            self._last_ts_ns = cols.ts_ns[-1]
        return reason

    def _scan_epb_run(self, max_packets: int, max_bytes: int) -> _EpbRun | None:
        """Whole EPBs from `_pos` on, up to the first block that is not one."""
        buf, pos, end = self._buf, self._pos, self._end
        head = self._lay.head.unpack_from
        batch_end = min(end, pos + max_bytes)
        bound = end  # the first block may exceed max_bytes on its own
        starts: list[int] = []
        add = starts.append
        for _ in range(max_packets):
            if pos + 32 > end:
                break
            btype, blen = head(buf, pos)
            if btype != PCAPNG_EPB or blen < 32 or blen & 3 or blen > MAX_BLOCK_BYTES:
                break
            if pos + blen > bound:
                break
            add(pos)
            pos += blen
            bound = batch_end
        return self._decode_epb_run(starts) if starts else None

    def _decode_epb_run(self, starts: list[int]) -> _EpbRun | None:
        """Decode EPB headers with numpy; the run ends before a damaged one."""
        raw = np.frombuffer(self._buf, dtype=np.uint8)
        at = np.array(starts, dtype=np.int64)
        words = raw[at[:, None] + _EPB_BYTE_INDEX].view(self._lay.word)
        blen = words[:, 1].astype(np.int64)
        trailer = raw[(at + blen - 4)[:, None] + _U32_BYTE_INDEX].view(self._lay.word)
        iface, caplen = words[:, 2], words[:, 5].astype(np.int64)
        bad = (iface >= len(self.interfaces)) | (caplen > blen - 32)
        bad |= trailer[:, 0] != words[:, 1]
        keep = int(np.argmax(bad)) if bad.any() else len(at)
        if keep == 0:
            return None  # the general path reports the damage
        self._pos = int(at[keep - 1] + blen[keep - 1])
        return self._epb_run(at[:keep], words[:keep])

    def _epb_run(self, at: np.ndarray, words: np.ndarray) -> _EpbRun:
        iface = words[:, 2].astype(np.intp)
        linktypes = np.array([i.linktype for i in self.interfaces], dtype=np.uint16)
        precisions = np.array([i.precision for i in self.interfaces], dtype=np.uint8)
        ts_ns = self._run_timestamps(iface, words[:, 3], words[:, 4])
        self._last_ts_ns = int(ts_ns[-1])
        return _EpbRun(
            data_start=at + 28,
            caplen=words[:, 5].astype(np.uint32),
            wirelen=words[:, 6].astype(np.uint32),
            ts_ns=ts_ns,
            linktype=linktypes[iface],
            precision=precisions[iface],
        )

    def _run_timestamps(
        self, iface: np.ndarray, high: np.ndarray, low: np.ndarray
    ) -> np.ndarray:
        """ns since the epoch, interface by interface."""
        units = (high.astype(np.uint64) << np.uint64(32)) | low.astype(np.uint64)
        ts_ns = np.empty(len(units), dtype=np.int64)
        for index in np.unique(iface).tolist():
            mask = iface == index
            ts_ns[mask] = self._to_ns(self.interfaces[index], units[mask])
        return ts_ns

    def _to_ns(self, info: _Interface, units: np.ndarray) -> np.ndarray:
        """Whole multiples in int64 when nothing can overflow; else exact ints."""
        margin = INT64_MAX - abs(info.offset_ns)
        if info.mult and margin > 0 and int(units.max()) <= margin // info.mult:
            return units.astype(np.int64) * info.mult + info.offset_ns
        return self._ts_array([info.to_ns(int(u)) for u in units.tolist()])

    def _build(self, start: int, cols: _Columns) -> PacketBatch:
        run = cols.run
        if run is None:
            return super()._build(start, cols)
        self._check_wirelen(run.caplen, run.wirelen, start)
        return PacketBatch(
            data=self._slice(start),
            offset=run.data_start - start,
            caplen=run.caplen,
            wirelen=np.maximum(run.wirelen, run.caplen),
            ts_ns=run.ts_ns,
            linktype=run.linktype,
            precision=run.precision,
        )

    def _block_head(self, buf: bytearray, pos: int) -> tuple[int, int, _Layout]:
        """Type, checked total length and byte order of the block at `pos`."""
        lay = self._lay
        btype = lay.u32.unpack_from(buf, pos)[0]
        if btype == PCAPNG_SHB:
            lay = self._section_layout(buf, pos)
        blen = lay.u32.unpack_from(buf, pos + 4)[0]
        if blen < PCAPNG_MIN_BLOCK_BYTES or blen % 4 or blen > MAX_BLOCK_BYTES:
            raise _Damage(
                f"block type {btype:#x} has length {blen}; a length must be a "
                f"multiple of 4 from {PCAPNG_MIN_BLOCK_BYTES} to {MAX_BLOCK_BYTES}"
            )
        return btype, blen, lay

    def _section_layout(self, buf: bytearray, pos: int) -> _Layout:
        """The byte order a Section Header Block announces."""
        magic = _LAYOUTS["<"].u32.unpack_from(buf, pos + 8)[0]
        if magic == PCAPNG_BYTE_ORDER_MAGIC:
            return _LAYOUTS["<"]
        if magic == 0x4D3C2B1A:
            return _LAYOUTS[">"]
        raise _Damage(f"section header has byte-order magic {magic:#010x}")

    def _record_need(self) -> int:
        left = self._end - self._pos
        if left < PCAPNG_MIN_BLOCK_BYTES:
            return PCAPNG_MIN_BLOCK_BYTES
        try:
            return self._block_head(self._buf, self._pos)[1]
        except _Damage:
            return left  # the next scan reports the damage

    def _read_block(
        self,
        buf: bytearray,
        pos: int,
        btype: int,
        blen: int,
        lay: _Layout,
        cols: _Columns,
    ) -> None:
        """Check the trailing length, then act on the block by its type."""
        trailer = lay.u32.unpack_from(buf, pos + blen - 4)[0]
        if trailer != blen:
            raise _Damage(
                f"block type {btype:#x} says length {blen} at its start "
                f"and {trailer} at its end"
            )
        if btype == PCAPNG_EPB:
            self._read_epb(buf, pos, blen, lay, cols)
        elif btype == PCAPNG_IDB:
            self._read_idb(buf, pos, blen, lay)
        elif btype == PCAPNG_SHB:
            self._read_shb(buf, pos, blen, lay)
        elif btype == PCAPNG_SPB:
            self._read_spb(buf, pos, blen, lay, cols)
        elif btype == PCAPNG_PB:
            self._read_pb(buf, pos, blen, lay, cols)
        # Every other block (name resolution, statistics, secrets, custom)
        # carries no packet and is skipped by its length.

    def _read_shb(self, buf: bytearray, pos: int, blen: int, lay: _Layout) -> None:
        """A new section: its byte order applies and its interfaces start empty."""
        if blen < PCAPNG_MIN_SHB_BYTES:
            raise _Damage(
                f"section header block is {blen} bytes, below {PCAPNG_MIN_SHB_BYTES}"
            )
        _magic, major, minor, _length = lay.shb.unpack_from(buf, pos + 8)
        if major != 1:
            raise _Damage(f"section header has version {major}.{minor}, not 1.x")
        self._read_options(buf, pos + 24, pos + blen - 4, lay)
        self._lay = lay
        self.interfaces = []

    def _read_idb(self, buf: bytearray, pos: int, blen: int, lay: _Layout) -> None:
        if blen < 20:
            raise _Damage(f"interface description block is {blen} bytes, below 20")
        linktype, _reserved, snaplen = lay.idb.unpack_from(buf, pos + 8)
        options = self._read_options(buf, pos + 16, pos + blen - 4, lay)
        tsresol = options.get(OPT_IF_TSRESOL, b"\x06")
        tsoffset = options.get(OPT_IF_TSOFFSET, bytes(8))
        if len(tsresol) != 1 or len(tsoffset) != 8:
            raise _Damage("interface option if_tsresol or if_tsoffset has a bad size")
        tsoffset_s = lay.i64.unpack(tsoffset)[0]
        info = _make_interface(linktype, snaplen, tsresol[0], tsoffset_s)
        self.interfaces.append(info)

    def _read_options(
        self, buf: bytearray, pos: int, end: int, lay: _Layout
    ) -> dict[int, bytes]:
        """Options from `pos` to `end` by code (the last of a repeated code)."""
        options: dict[int, bytes] = {}
        while pos + 4 <= end:
            code, length = lay.opt.unpack_from(buf, pos)
            if code == OPT_ENDOFOPT:
                break
            if pos + 4 + length > end:
                raise _Damage(f"option {code} of length {length} runs past its block")
            options[code] = bytes(buf[pos + 4 : pos + 4 + length])
            pos += 4 + (length + 3) // 4 * 4
        return options

    def _read_epb(
        self, buf: bytearray, pos: int, blen: int, lay: _Layout, cols: _Columns
    ) -> None:
        if blen < 32:
            raise _Damage(f"enhanced packet block is {blen} bytes, below 32")
        iface, high, low, caplen, wirelen = lay.epb.unpack_from(buf, pos + 8)
        self._add_packet(cols, pos + 28, blen - 32, iface, high, low, caplen, wirelen)

    def _read_pb(
        self, buf: bytearray, pos: int, blen: int, lay: _Layout, cols: _Columns
    ) -> None:
        if blen < 32:
            raise _Damage(f"packet block is {blen} bytes, below 32")
        iface, _drops, high, low, caplen, wirelen = lay.pb.unpack_from(buf, pos + 8)
        self._add_packet(cols, pos + 28, blen - 32, iface, high, low, caplen, wirelen)

    def _add_packet(
        self,
        cols: _Columns,
        start: int,
        room: int,
        iface: int,
        high: int,
        low: int,
        caplen: int,
        wirelen: int,
    ) -> None:
        """Add one timestamped packet after checking its interface and size."""
        if caplen > room:
            raise _Damage(f"packet of {caplen} bytes does not fit its block")
        info = self._interface(iface)
        ts_ns = info.to_ns((high << 32) | low)
        cols.offset.append(start)
        cols.caplen.append(caplen)
        cols.wirelen.append(wirelen)
        cols.ts_ns.append(ts_ns)
        cols.linktype.append(info.linktype)
        cols.precision.append(info.precision)

    def _interface(self, iface: int) -> _Interface:
        if iface >= len(self.interfaces):
            raise _Damage(
                f"packet for interface {iface}, but the section describes "
                f"{len(self.interfaces)}"
            )
        return self.interfaces[iface]

    def _read_spb(
        self, buf: bytearray, pos: int, blen: int, lay: _Layout, cols: _Columns
    ) -> None:
        """A packet of interface 0 without timestamp: the last one seen is used."""
        if blen < 16:
            raise _Damage(f"simple packet block is {blen} bytes, below 16")
        info = self._interface(0)
        wirelen = lay.u32.unpack_from(buf, pos + 8)[0]
        caplen = min(wirelen, blen - 16, info.snaplen or wirelen)
        cols.offset.append(pos + 12)
        cols.caplen.append(caplen)
        cols.wirelen.append(wirelen)
        cols.ts_ns.append(cols.ts_ns[-1] if cols.ts_ns else self._last_ts_ns)
        cols.linktype.append(info.linktype)
        cols.precision.append(info.precision)
