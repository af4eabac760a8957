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

Damage is never fatal to the records before it: every good record is yielded,
then `batches()` raises `CorruptCapture` with the byte offset of the damage.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

import numpy as np

from fpc.errors import CaptureError, CorruptCapture
from fpc.packets import PRECISION_NS, PRECISION_US, PacketBatch

__all__ = ["CaptureFile", "expand_paths", "open_capture"]

logger = logging.getLogger(__name__)

CAPTURE_EXTENSIONS = (".pcap", ".pcapng", ".cap", ".dmp")
CHUNK_BYTES = 4 << 20  # read size; a record never needs more than one refill
MAX_CAPLEN_BYTES = 256 << 10  # largest packet a classic pcap record may hold
MAX_BLOCK_BYTES = 16 << 20  # largest pcapng block we accept
PCAP_HEADER_BYTES = 24
PCAP_RECORD_BYTES = 16
PCAPNG_MIN_BLOCK_BYTES = 12

# Classic pcap magic (as read little-endian) -> (byte order, ns per fraction unit)
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
PCAPNG_PACKET_BLOCKS = (PCAPNG_EPB, PCAPNG_SPB, PCAPNG_PB)
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
    logger.debug("capture directory listed path=%s files=%d", directory, len(found))
    return found


def _looks_like_capture(path: str) -> bool:
    """True for a capture file by extension, or else by its magic number."""
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


def open_capture(path: str) -> CaptureFile:
    """Open a classic pcap or pcapng file; CaptureError if it is neither."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - owned and closed by CaptureFile
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(PCAP_HEADER_BYTES)
    except OSError as exc:
        raise CaptureError(
            f"cannot open capture file {path} ({exc.strerror}); "
            "check that it exists and is readable"
        ) from exc
    try:
        return _open_format(path, fh, size, head)
    except CaptureError:
        fh.close()
        raise


def _open_format(path: str, fh: BinaryIO, size: int, head: bytes) -> CaptureFile:
    """Pick the reader class from the first bytes of the file."""
    magic = struct.unpack_from("<I", head)[0] if len(head) >= 4 else None
    if magic == PCAPNG_SHB:
        if len(head) < PCAPNG_MIN_BLOCK_BYTES + 4:
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


class CaptureFile:
    """A capture file being read; `batches()` yields its packets in order.

    `packets` and `bytes_read` (captured packet bytes) count what was
    yielded so far; `position` is the file offset of the next unread record
    and `size` the file size, for a progress bar. `errors` holds a message
    for each kind of damage seen, tolerated or not; `anomalies` counts the
    tolerated kinds (records read, with a value fixed or kept as it was).
    """

    format = ""

    def __init__(self, path: str, fh: BinaryIO, size: int, head: bytes) -> None:
        self.path = path
        self.size = size
        self.packets = 0
        self.bytes_read = 0
        self.errors: list[str] = []
        self.anomalies: dict[str, int] = {}  # tolerated oddities, by kind
        self._fh = fh
        self._buf = head
        self._base = 0  # file offset of _buf[0]
        self._pos = 0  # next unread byte in _buf
        self._eof = False
        logger.debug(
            "capture file opened path=%s format=%s size=%d", path, self.format, size
        )

    @property
    def position(self) -> int:
        return self._base + self._pos

    def batches(
        self, max_packets: int = 512, max_bytes: int = 1 << 20
    ) -> Iterator[PacketBatch]:
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
            "capture file read path=%s format=%s packets=%d bytes=%d",
            self.path,
            self.format,
            self.packets,
            self.bytes_read,
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
        while True:
            start = self._pos
            cols = _Columns([], [], [], [], [], [])
            reason = self._scan(cols, max_packets, max_bytes)
            if cols.offset:
                # Damage found after good records is met again on the next call.
                return self._build(start, cols)
            if reason is not None:
                raise self._corrupt(self.position, reason)
            if self._pos > start:
                continue  # consumed records that carry no packet
            need = self._record_need()
            if not self._fill(need):
                return self._end_of_file(need)

    def _end_of_file(self, need: int) -> None:
        """Clean end if nothing is left; else the last record is cut short."""
        left = len(self._buf) - self._pos
        if left:
            raise self._corrupt(
                self.position,
                f"the file ends inside the last record ({left} of at least "
                f"{need} bytes present)",
            )
        return None

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
            data=self._buf[start : self._pos],
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
        avail = len(self._buf) - self._pos
        if avail >= need:
            return True
        if self._eof:
            return False
        parts = [self._buf[self._pos :]]
        while avail < need and not self._eof:
            chunk = self._read(max(CHUNK_BYTES, need - avail))
            self._eof = not chunk
            parts.append(chunk)
            avail += len(chunk)
        self._base += self._pos
        self._buf = b"".join(parts)
        self._pos = 0
        return avail >= need

    def _read(self, n: int) -> bytes:
        try:
            return self._fh.read(n)
        except OSError as exc:
            raise CaptureError(
                f"cannot read capture file {self.path} at byte {self.position} "
                f"({exc.strerror}); check the disk and the file permissions"
            ) from exc

    def _corrupt(self, offset: int, reason: str) -> CorruptCapture:
        """Record damage at file offset `offset` and build the error to raise."""
        error = CorruptCapture(self.path, offset, reason)
        self.errors.append(str(error))
        logger.warning(
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

    def __init__(self, path: str, fh: BinaryIO, size: int, head: bytes) -> None:
        super().__init__(path, fh, size, head)
        order, self._frac_ns = PCAP_MAGICS[struct.unpack_from("<I", head)[0]]
        fields = struct.unpack_from(order + "HHiIII", head, 4)
        self.version = (fields[0], fields[1])
        self.snaplen = fields[4]
        # The upper bits of the link type field carry FCS information.
        self.linktype = fields[5] & 0xFFFF
        self.precision = PRECISION_NS if self._frac_ns == 1 else PRECISION_US
        self.max_caplen = min(self.snaplen or MAX_CAPLEN_BYTES, MAX_CAPLEN_BYTES)
        self._caplen_at = struct.Struct(order + "I").unpack_from
        self._word = np.dtype(order + "u4")
        self._pos = PCAP_HEADER_BYTES
        self._version_checked = False

    def _scan(self, cols: _Columns, max_packets: int, max_bytes: int) -> str | None:
        """Find whole records; only their start offsets go into `cols`."""
        if not self._version_checked:
            self._check_version()
        buf, pos, end = self._buf, self._pos, len(self._buf)
        caplen_at, limit, stop = self._caplen_at, self.max_caplen, pos + max_bytes
        starts = cols.offset
        reason = None
        for _ in range(max_packets):
            if pos + PCAP_RECORD_BYTES > end:
                break
            caplen = caplen_at(buf, pos + 8)[0]
            if caplen > limit:
                reason = f"record caplen {caplen} exceeds the limit of {limit} bytes"
                break
            after = pos + PCAP_RECORD_BYTES + caplen
            if after > end or (after > stop and starts):
                break
            starts.append(pos)
            pos = after
        self._pos = pos
        return reason

    def _check_version(self) -> None:
        if self.version[0] != 2:
            raise self._corrupt(
                4, f"pcap version {self.version[0]}.{self.version[1]} is not 2.x"
            )
        self._version_checked = True

    def _record_need(self) -> int:
        if len(self._buf) - self._pos < PCAP_RECORD_BYTES:
            return PCAP_RECORD_BYTES
        caplen = self._caplen_at(self._buf, self._pos + 8)[0]
        return PCAP_RECORD_BYTES + int(caplen)

    def _build(self, start: int, cols: _Columns) -> PacketBatch:
        """Read all record headers of the batch at once with numpy."""
        starts = np.array(cols.offset, dtype=np.int64)
        raw = np.frombuffer(self._buf, dtype=np.uint8)
        words = raw[starts[:, None] + _RECORD_BYTE_INDEX].view(self._word)
        caplen = words[:, 2].astype(np.uint32)
        wirelen = words[:, 3].astype(np.uint32)
        self._check_wirelen(caplen, wirelen, start)
        n = len(starts)
        return PacketBatch(
            data=self._buf[start : self._pos],
            offset=starts + (PCAP_RECORD_BYTES - start),
            caplen=caplen,
            wirelen=np.maximum(wirelen, caplen),
            ts_ns=self._timestamps(words[:, 0], words[:, 1], start),
            linktype=np.full(n, self.linktype, dtype=np.uint16),
            precision=np.full(n, self.precision, dtype=np.uint8),
        )

    def _timestamps(self, sec: np.ndarray, frac: np.ndarray, start: int) -> np.ndarray:
        """Nanoseconds from unsigned seconds and the fraction (us or ns)."""
        frac_max = 1_000_000_000 // self._frac_ns
        self._note(
            "ts_fraction_too_big",
            int(np.count_nonzero(frac >= frac_max)),
            f"a record after byte {self._base + start} has a fraction of a "
            "second of 1 s or more; it was kept as written",
        )
        ns = sec.astype(np.int64) * 1_000_000_000
        return ns + frac.astype(np.int64) * self._frac_ns


_RECORD_BYTE_INDEX = np.arange(PCAP_RECORD_BYTES, dtype=np.int64)
