"""The capture pipeline: every batch goes decode -> PCAP writer -> sessions -> store.

In: `PacketBatch`es from `fpc.reader` (files) or `fpc.capture` (interfaces).
Out: PCAP files, SPI records in the store (and on stdout with --print), and
the counters of the final summary. Runs on one processing thread.

SPI records reach the store only after the PCAP writer has flushed the
packets they point at, so a record never names a packet that is not on disk.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from fpc.config import Config
from fpc.decode import decode_batch
from fpc.errors import StoreError
from fpc.packets import PacketBatch
from fpc.session import SessionLimits, SessionTable
from fpc.spi import build_record
from fpc.store.base import Store, encode_record
from fpc.writer import PcapWriter

logger = logging.getLogger(__name__)

UNSAVED_NAME = "unsaved-records.jsonl"
OFFLINE_HOLD_RECORDS = 1024  # records saved at once when reading capture files


def session_limits(cfg: Config) -> SessionLimits:
    s = cfg.sessions
    return SessionLimits(
        tcp_timeout_s=s.tcp_timeout,
        udp_timeout_s=s.udp_timeout,
        other_timeout_s=s.other_timeout,
        tcp_close_s=s.tcp_close,
        segment_age_s=s.segment_age,
        segment_packets=s.segment_packets,
        max_sessions=s.max_sessions,
    )


class Pipeline:
    """Runs the stages for one node; not thread-safe."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        on_record: Callable[[dict[str, Any]], None] | None = None,
        hold_records: int = 0,
    ) -> None:
        self.cfg = cfg
        # Records gathered before one save: a store transaction and a PCAP
        # flush each cost about as much as a hundred records. Capture files
        # hold many; live capture none, so records reach the store at once.
        self.hold_records = hold_records
        self._held: list[dict[str, Any]] = []
        self.store = store
        self.on_record = on_record
        self.writer = PcapWriter(
            cfg.pcap_dir,
            cfg.node,
            store,
            cfg.writer.max_file_size,
            cfg.writer.max_file_time,
        )
        self.sessions = SessionTable(session_limits(cfg), cfg.sessions.app_layer)
        self.packets = 0
        self.bytes = 0
        self.records = 0
        self.unsaved = 0
        self.lost = 0  # records neither stored nor kept in UNSAVED_NAME
        # Set by live capture: libpcap's received / dropped counters.
        self.capture_stats: Callable[[], dict[str, int]] | None = None

    def process(self, batch: PacketBatch, dec: np.ndarray | None = None) -> None:
        """Write, decode and account one batch; save the sessions it ended.
        `dec`: the batch already decoded (`decode_batch` with this config)."""
        if len(batch) == 0:
            return
        self.packets += len(batch)
        self.bytes += int(batch.caplen.sum())
        files, pos = self.writer.write(batch)
        if dec is None:
            dec = decode_batch(batch, self.cfg.sessions.key_vlan)
        self.sessions.add_batch(batch, dec, files, pos)
        self._save_done()

    def tick(self, now_ns: int) -> None:
        """End sessions idle as of wall-clock `now_ns` (live capture)."""
        self.sessions.expire(now_ns)
        self._save_done()

    def finish(self) -> None:
        """End every session and close the PCAP file (end of input, signal)."""
        self.sessions.flush_all()
        self._save_done(force=True)
        self.writer.close()

    def _save_done(self, force: bool = False) -> None:
        done = self.sessions.take_done()
        node = self.cfg.node
        self.records += len(done)
        # The end of input ends every session at once: records are built and
        # saved a hold at a time, so they never pile up by the ten thousand
        # (each collector run walks every object still alive).
        step = self.hold_records or len(done) or 1
        for lo in range(0, len(done), step):
            self._held.extend(build_record(node, s) for s in done[lo : lo + step])
            if len(self._held) >= self.hold_records:
                self._save_held()
        if self._held and force:
            self._save_held()

    def _save_held(self) -> None:
        self.writer.flush()
        records, self._held = self._held, []
        try:
            self.store.save_sessions(records)
        except StoreError as exc:
            self._keep_unsaved(records, exc)
        if self.on_record is not None:
            for record in records:
                self.on_record(record)

    def _keep_unsaved(self, records: list[dict[str, Any]], exc: StoreError) -> None:
        """Append records the store refused to a JSON-lines file, to load later."""
        path = os.path.join(self.cfg.data_dir, UNSAVED_NAME)
        lines = "".join(encode_record(record) + "\n" for record in records)
        try:
            _append_whole(path, lines.encode())
        except OSError as error:
            # e.g. the disk that refused the store is full: count and go on
            self.lost += len(records)
            logger.error(
                "records lost count=%d: the store refused them (%s) and they "
                "could not be kept in %s (%s); free disk space in the data "
                "directory", len(records), exc, path, error.strerror,
            )  # fmt: skip
            return
        self.unsaved += len(records)
        logger.error(
            "store refused records count=%d kept_in=%s error=%s",
            len(records),
            path,
            exc,
        )

    def node_counters(self) -> dict[str, int]:
        """Totals for the node stats reporter (called from its thread)."""
        live = self.capture_stats() if self.capture_stats is not None else {}
        return {
            "packets_received": live.get("received", self.packets),
            "packets_dropped": live.get("dropped", 0)
            + live.get("interface_dropped", 0)
            + live.get("ring_dropped", 0),
            "bytes": self.bytes,
            "sessions": self.sessions.counters["sessions"],
            "active_sessions": len(self.sessions),
            "pcap_bytes_written": self.writer.bytes,
        }

    def summary(self) -> dict[str, int]:
        """Counters for the end-of-run report and the node stats."""
        c = self.sessions.counters
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "session_packets": c["session_packets"],
            "non_ip": c["non_ip"],
            "malformed": c["malformed"],
            "unsupported_link": c["unsupported_link"],
            "orphan_fragments": c["orphan_fragments"],
            "sessions": c["sessions"],
            "records": self.records,
            "active_sessions": len(self.sessions),
            "evicted": c["evicted"],
            "app_skipped": c["app_skipped"],
            "app_errors": c["app_errors"],
            "pcap_packets": self.writer.packets,
            "pcap_bytes": self.writer.bytes,
            "pcap_files": self.writer.files,
            "pcap_write_failed": self.writer.packets_failed,
            "unsaved_records": self.unsaved,
            "lost_records": self.lost,
        }


def _append_whole(path: str, data: bytes) -> None:
    """Append `data` to `path` all or nothing: a failed write is cut back, so
    the file never ends in half a line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            os.ftruncate(fd, start)
            raise
    finally:
        os.close(fd)
