"""Stage 4 of the pipeline: packets to rotating PCAP files on disk.

In: `PacketBatch`es in capture order from the reader or capture thread. Out:
PCAP files `<node>-<file_num:06d>-<YYYYmmdd-HHMMSS>.pcap` under the PCAP
directory, one registry row per file in the store, and each packet's file
number and packet position, which the session table keeps in the SPI record.
Runs on the thread that calls `write`; a `PcapWriter` is not thread-safe.

Each batch segment is packed into one buffer and handed to the kernel with one
`os.write`, so while the process runs the file holds whole records only, and a
failed write is cut back to the last whole record. SIGKILL can stop a large
write part-way; the next writer of the node cuts that partial record off when
it starts. Readers serve a file up to its last flush (the registry size).
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import ModuleType

import numpy as np

from fpc.errors import PcapUnavailable, StoreError, WriterError
from fpc.packets import PRECISION_US, PacketBatch
from fpc.pcapfile import (
    FILE_HEADER_BYTES,
    RECORD_HEADER_BYTES,
    PcapFileReader,
    find_tail,
    pcap_file_header,
)
from fpc.store.base import PcapFile, Store

_fastpath: ModuleType | None
try:
    _fastpath = importlib.import_module("fpc._fastpath")
except ImportError:  # the C extension is not built: the numpy path does the work
    _fastpath = None

logger = logging.getLogger(__name__)

NODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
RETRY_INTERVAL_S = 1.0  # after a failed write, wait this long before a new file
# A batch's records go to the file in write() calls of at most this many bytes.
# The kernel's copy into the page cache (ext4, copy_folio_from_iter_atomic)
# took 5-10 % of all ingest CPU with one write of a 4 MiB batch, 1 % with
# pieces of 256 KiB to 2 MiB (perf, offline and live, 200k-packet mkpcap).
WRITE_PIECE_BYTES = 1 << 20
_NS = 1_000_000_000


def pack_records_numpy(batch: PacketBatch, lo: int, hi: int) -> bytes:
    """Record headers and data of packets lo..hi-1, in pcap record layout.

    Precision is that of packet `lo`; the caller keeps it uniform in the range.
    """
    caplen = batch.caplen[lo:hi].astype(np.int64)
    rec_len = caplen + RECORD_HEADER_BYTES
    starts = np.zeros(hi - lo, dtype=np.int64)
    np.cumsum(rec_len[:-1], out=starts[1:])
    out = np.empty(int(rec_len.sum()), dtype=np.uint8)

    hdr_idx = starts[:, None] + np.arange(RECORD_HEADER_BYTES)
    out[hdr_idx] = _record_headers(batch, lo, hi).view(np.uint8).reshape(-1, 16)
    is_data = np.ones(len(out), dtype=bool)
    is_data[hdr_idx] = False
    out[is_data] = _packet_bytes(batch, lo, hi, caplen)
    return out.tobytes()


def _record_headers(batch: PacketBatch, lo: int, hi: int) -> np.ndarray:
    ts_ns = batch.ts_ns[lo:hi]
    sec, frac = np.divmod(ts_ns, _NS)
    if int(batch.precision[lo]) == PRECISION_US:
        frac //= 1000
    hdr = np.empty((hi - lo, 4), dtype="<u4")
    # Seconds outside 1970..2106 cannot be stored; they wrap as libpcap's do.
    hdr[:, 0] = (sec & 0xFFFFFFFF).astype("<u4")
    hdr[:, 1] = frac
    hdr[:, 2] = batch.caplen[lo:hi]
    hdr[:, 3] = batch.wirelen[lo:hi]
    return hdr


def _packet_bytes(
    batch: PacketBatch, lo: int, hi: int, caplen: np.ndarray
) -> np.ndarray:
    """Data bytes of packets lo..hi-1 back to back; a slice when contiguous."""
    offset = batch.offset[lo:hi]
    total = int(caplen.sum())
    src = np.frombuffer(batch.data, dtype=np.uint8)
    if np.array_equal(offset[1:], offset[:-1] + caplen[:-1]):
        start = int(offset[0])
        return src[start : start + total]
    before = np.zeros(len(caplen), dtype=np.int64)
    np.cumsum(caplen[:-1], out=before[1:])
    index = np.repeat(offset - before, caplen) + np.arange(total, dtype=np.int64)
    gathered: np.ndarray = src[index]
    return gathered


def pack_records(batch: PacketBatch, lo: int, hi: int) -> bytes:
    """Pack with the C extension when it has `pack_records`, else with numpy."""
    fast = getattr(_fastpath, "pack_records", None)
    if fast is None:
        return pack_records_numpy(batch, lo, hi)
    return bytes(
        fast(
            batch.data,
            batch.offset[lo:hi],
            batch.caplen[lo:hi],
            batch.wirelen[lo:hi],
            batch.ts_ns[lo:hi],
            int(batch.precision[lo]),
        )
    )


def record_span(batch: PacketBatch, lo: int, hi: int) -> memoryview | None:
    """Packets lo..hi-1 as the pcap records already in a framed batch's buffer.

    None when the batch is not framed or the records are not back to back.
    """
    if not batch.framed:
        return None
    offset = batch.offset[lo:hi]
    caplen = batch.caplen[lo:hi]
    follows = offset[:-1] + caplen[:-1] + RECORD_HEADER_BYTES
    if not np.array_equal(offset[1:], follows):
        return None
    start = int(offset[0]) - RECORD_HEADER_BYTES
    return memoryview(batch.data)[start : int(offset[-1]) + int(caplen[-1])]


def file_name(node: str, file_num: int, ts_ns: int) -> str:
    """`<node>-<file_num:06d>-<YYYYmmdd-HHMMSS>.pcap`; first packet time, UTC."""
    try:
        stamp = datetime.fromtimestamp(ts_ns / _NS, tz=UTC).strftime("%Y%m%d-%H%M%S")
    except (OverflowError, OSError, ValueError):
        stamp = "00000000-000000"
    return f"{node}-{file_num:06d}-{stamp}.pcap"


@dataclass
class _OpenFile:
    fd: int
    row: PcapFile
    first_pending: bool = True  # first_ts_ns not yet taken from a packet


class PcapWriter:
    """Writes every packet once, in order, to the node's current PCAP file."""

    def __init__(
        self,
        pcap_dir: str,
        node: str,
        store: Store,
        max_file_bytes: int,
        max_file_age_s: float,
        fsync: bool = False,
        retry_interval_s: float = RETRY_INTERVAL_S,
    ) -> None:
        self.pcap_dir = os.path.abspath(pcap_dir)
        self.node = node
        self.store = store
        self.max_file_bytes = max_file_bytes
        self.max_file_age_ns = int(max_file_age_s * _NS)
        self.fsync = fsync
        self.retry_interval_s = retry_interval_s
        self.packets = 0  # packets written
        self.bytes = 0  # bytes written, file and record headers included
        self.files = 0  # files opened
        self.packets_failed = 0  # packets not written (write errors)
        self._file: _OpenFile | None = None
        self._retry_at = 0.0
        self._check_settings()
        self._check_dir()
        self._repair_last_file()

    def _check_settings(self) -> None:
        if not NODE_PATTERN.match(self.node):
            raise WriterError(
                f"node name {self.node!r} cannot be used in PCAP file names; "
                "use 1 to 64 letters, digits, '.', '_' or '-'"
            )
        if self.max_file_bytes < FILE_HEADER_BYTES + RECORD_HEADER_BYTES:
            raise WriterError(
                f"max_file_bytes = {self.max_file_bytes} cannot hold a packet; "
                "set a size such as 1073741824 (1 GiB)"
            )
        if self.max_file_age_ns <= 0:
            raise WriterError(
                f"max_file_age_s = {self.max_file_age_ns / _NS} must be positive; "
                "set for example 3600"
            )

    def _check_dir(self) -> None:
        try:
            os.makedirs(self.pcap_dir, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.pcap_dir) as probe:
                probe.write(b"probe")
        except OSError as exc:
            raise WriterError(
                f"PCAP directory {self.pcap_dir} cannot be created or written "
                f"({exc.strerror}); create it and give the capture user write "
                "access, or set another PCAP directory"
            ) from exc

    def _repair_last_file(self) -> None:
        """Cut a record half-written when an earlier writer was killed; close its row.

        A write cut short by SIGKILL or a crash leaves part of a record at the
        end of the node's newest file, which tcpdump refuses; every whole
        record is kept, whether or not it was flushed.
        """
        last = self._last_file_on_disk()
        if last is None:
            return
        file_num, path = last
        row = self.store.get_file(self.node, file_num)
        size = os.path.getsize(path)
        if row is not None and row.closed and row.size == size:
            return
        try:
            row = self._walk_tail(file_num, path, row, size)
        except PcapUnavailable as exc:
            logger.warning("pcap file not repaired path=%s error=%s", path, exc)
            return
        self.store.save_file(row)

    def _last_file_on_disk(self) -> tuple[int, str] | None:
        pattern = re.compile(re.escape(self.node) + r"-(\d{6,})-\d{8}-\d{6}\.pcap\Z")
        found = [
            (int(m.group(1)), os.path.join(self.pcap_dir, name))
            for name in os.listdir(self.pcap_dir)
            if (m := pattern.match(name))
        ]
        return max(found) if found else None

    def _walk_tail(
        self, file_num: int, path: str, row: PcapFile | None, size: int
    ) -> PcapFile:
        if row is None or not FILE_HEADER_BYTES <= row.size <= size:
            with PcapFileReader(path) as reader:
                header = reader.header
            row = PcapFile(self.node, file_num, path, header.linktype, header.precision)
            row.size = FILE_HEADER_BYTES
        tail = find_tail(path, row.size)
        if tail.end < size:
            os.truncate(path, tail.end)
        if row.packets == 0 and tail.packets:
            row.first_ts_ns = find_first_ts(path)
        if tail.last_ts_ns is not None:
            row.last_ts_ns = tail.last_ts_ns
        row.packets += tail.packets
        row.size, row.closed = tail.end, True
        logger.warning(
            "pcap file repaired file_num=%d path=%s cut_bytes=%d packets=%d",
            file_num, path, size - tail.end, row.packets,
        )  # fmt: skip
        return row

    def write(self, batch: PacketBatch) -> tuple[np.ndarray, np.ndarray]:
        """Write `batch`; (file number, packet position) of each packet, -1 if lost."""
        n = len(batch)
        file_num = np.full(n, -1, dtype=np.int64)
        pos = np.full(n, -1, dtype=np.int64)
        lo = 0
        while lo < n:
            reason = self._rotation_reason(batch, lo)
            if reason is not None and not self._open_next_file(batch, lo, reason):
                self.packets_failed += n - lo
                break
            hi = self._segment_end(batch, lo)
            self._write_segment(batch, lo, hi, file_num, pos)
            lo = hi
        return file_num, pos

    def _rotation_reason(self, batch: PacketBatch, i: int) -> str | None:
        """Why packet i cannot go to the current file, or None if it can."""
        f = self._file
        if f is None:
            return "start"
        row = f.row
        if int(batch.linktype[i]) != row.linktype:
            return "linktype"
        if int(batch.precision[i]) != row.precision:
            return "precision"
        if row.packets == 0:
            return None
        if row.size + RECORD_HEADER_BYTES + int(batch.caplen[i]) > self.max_file_bytes:
            return "size"
        if int(batch.ts_ns[i]) - row.first_ts_ns > self.max_file_age_ns:
            return "age"
        return None

    def _segment_end(self, batch: PacketBatch, lo: int) -> int:
        """One past the last packet from `lo` on that the current file can take."""
        assert self._file is not None
        row = self._file.row
        n = len(batch)
        ends = [n]
        same = (batch.linktype[lo:] == row.linktype) & (
            batch.precision[lo:] == row.precision
        )
        ends.append(lo + _first_false(same))

        rec_len = batch.caplen[lo:].astype(np.int64) + RECORD_HEADER_BYTES
        room = self.max_file_bytes - row.size
        ends.append(lo + int(np.searchsorted(np.cumsum(rec_len), room, side="right")))

        first_ts = row.first_ts_ns if row.packets else int(batch.ts_ns[lo])
        young = batch.ts_ns[lo:] - first_ts <= self.max_file_age_ns
        ends.append(lo + _first_false(young))
        # The first packet of a file always fits, however large or late it is.
        return max(min(ends), lo + 1)

    def _write_segment(
        self,
        batch: PacketBatch,
        lo: int,
        hi: int,
        file_num: np.ndarray,
        pos: np.ndarray,
    ) -> None:
        assert self._file is not None
        f = self._file
        span = record_span(batch, lo, hi)
        buf = pack_records(batch, lo, hi) if span is None else span
        start = f.row.size
        if not self._write_all(buf):
            self.packets_failed += hi - lo
            self._close_file("write error")
            self._retry_at = time.monotonic() + self.retry_interval_s
            return

        rec_len = batch.caplen[lo:hi].astype(np.int64) + RECORD_HEADER_BYTES
        pos[lo:hi] = start + np.cumsum(rec_len) - rec_len
        file_num[lo:hi] = f.row.file_num
        self._account(batch, lo, hi, len(buf))

    def _account(self, batch: PacketBatch, lo: int, hi: int, nbytes: int) -> None:
        assert self._file is not None
        f = self._file
        if f.first_pending:
            f.row.first_ts_ns = int(batch.ts_ns[lo])
            f.first_pending = False
        f.row.last_ts_ns = int(batch.ts_ns[hi - 1])
        f.row.size += nbytes
        f.row.packets += hi - lo
        self.packets += hi - lo
        self.bytes += nbytes

    def _write_all(self, buf: bytes | memoryview) -> bool:
        """Append `buf` to the current file; on error cut the file back and log."""
        assert self._file is not None
        f = self._file
        view = memoryview(buf)
        try:
            while view:
                view = view[os.write(f.fd, view[:WRITE_PIECE_BYTES]) :]
        except OSError as exc:
            self._log_write_error(exc)
            self._truncate_to_last_record()
            return False
        return True

    def _log_write_error(self, exc: OSError) -> None:
        assert self._file is not None
        row = self._file.row
        fix = "free disk space or delete old PCAP files"
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            fix = "check the disk and the kernel log"
        logger.error(
            "pcap write failed file_num=%d path=%s error=%s; packets are counted "
            "as not written until a new file opens; %s",
            row.file_num,
            row.path,
            exc.strerror,
            fix,
        )

    def _truncate_to_last_record(self) -> None:
        assert self._file is not None
        try:
            os.ftruncate(self._file.fd, self._file.row.size)
        except OSError as exc:
            logger.error(
                "pcap truncate failed path=%s size=%d error=%s",
                self._file.row.path,
                self._file.row.size,
                exc.strerror,
            )

    def _open_next_file(self, batch: PacketBatch, i: int, reason: str) -> bool:
        """Rotate to a new file for packet i; False while writes keep failing."""
        if self._file is not None:
            self._close_file(reason)
        if time.monotonic() < self._retry_at:
            return False
        file_num = self._next_file_num()
        if file_num is None:
            return False
        name = file_name(self.node, file_num, int(batch.ts_ns[i]))
        row = PcapFile(
            node=self.node,
            file_num=file_num,
            path=os.path.join(self.pcap_dir, name),
            linktype=int(batch.linktype[i]),
            precision=int(batch.precision[i]),
        )
        if not self._create_file(row):
            self._retry_at = time.monotonic() + self.retry_interval_s
            return False
        self.files += 1
        logger.info(
            "pcap file opened file_num=%d path=%s reason=%s linktype=%d precision=%d",
            file_num,
            row.path,
            reason,
            row.linktype,
            row.precision,
        )
        return True

    def _next_file_num(self) -> int | None:
        try:
            return self.store.next_file_num(self.node)
        except StoreError as exc:
            logger.error(
                "pcap file number unavailable node=%s error=%s; packets are counted "
                "as not written until the store answers",
                self.node,
                exc,
            )
            self._retry_at = time.monotonic() + self.retry_interval_s
            return None

    def _create_file(self, row: PcapFile) -> bool:
        header = pcap_file_header(row.linktype, row.precision)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            fd = os.open(row.path, flags, 0o644)
        except OSError as exc:
            logger.error(
                "pcap file create failed file_num=%d path=%s error=%s; "
                "check free space and permissions of the PCAP directory",
                row.file_num,
                row.path,
                exc.strerror,
            )
            return False
        self._file = _OpenFile(fd, row)
        if not self._write_all(header):
            self._discard_file()
            return False
        row.size = len(header)
        self.bytes += len(header)
        self._save_row()
        return True

    def _discard_file(self) -> None:
        assert self._file is not None
        os.close(self._file.fd)
        try:
            os.unlink(self._file.row.path)
        except OSError:
            pass  # nothing was written that a reader could use
        self._file = None

    def _close_file(self, reason: str) -> None:
        f = self._file
        if f is None:
            return
        self._sync()
        os.close(f.fd)
        f.row.closed = True
        self._save_row()
        self._file = None
        logger.info(
            "pcap file closed file_num=%d path=%s packets=%d bytes=%d reason=%s",
            f.row.file_num,
            f.row.path,
            f.row.packets,
            f.row.size,
            reason,
        )

    def _sync(self) -> None:
        assert self._file is not None
        if not self.fsync:
            return
        try:
            os.fsync(self._file.fd)
        except OSError as exc:
            logger.error(
                "pcap fsync failed path=%s error=%s", self._file.row.path, exc.strerror
            )

    def _save_row(self) -> None:
        assert self._file is not None
        try:
            self.store.save_file(replace(self._file.row))
        except StoreError as exc:
            # The row is saved again at the next flush or close; packets are safe.
            logger.warning(
                "pcap registry update failed file_num=%d error=%s",
                self._file.row.file_num,
                exc,
            )

    def flush(self) -> None:
        """Make what was written durable (fsync if set) and update the registry."""
        if self._file is None:
            return
        self._sync()
        self._save_row()

    def close(self) -> None:
        """Close the current file and mark it closed in the registry."""
        self._close_file("shutdown")

    def current_file(self) -> PcapFile | None:
        """A copy of the open file's registry row, or None."""
        return None if self._file is None else replace(self._file.row)


def find_first_ts(path: str) -> int:
    with PcapFileReader(path) as reader:
        return reader.read_header(FILE_HEADER_BYTES, reader.size())[0]


def _first_false(mask: np.ndarray) -> int:
    """Index of the first False in `mask`, or len(mask) when all are True."""
    bad = np.flatnonzero(~mask)
    return int(bad[0]) if len(bad) else len(mask)
