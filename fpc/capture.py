"""Live capture: the first pipeline stage when reading from an interface.

Packets come from the kernel through libpcap (pcapy-ng). `LiveCapture` reads
them in batches with `next_batch` and hands each one on as a `PacketBatch`
(fpc.packets) to the decoder. The capture thread that iterates `batches()`
runs everything here; `stats()` may be read from another thread. The handle is
non-blocking and waited on with poll(2), so setting the stop event ends the
iteration within about `timeout_ms`, even on an idle interface.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pcapy

from fpc.errors import CaptureError, ConfigError
from fpc.packets import PRECISION_US, PacketBatch

logger = logging.getLogger(__name__)

MAX_SNAPLEN = 262144  # libpcap's own limit
MAX_BUFFER_MB = 2047  # libpcap takes the size in bytes as a C int
MAX_TIMEOUT_MS = 10_000
NS_PER_S = 1_000_000_000
NS_PER_US = 1_000

# One record per packet from next_batch: four native-endian uint32.
_META_DTYPE = np.dtype(
    [("sec", "=u4"), ("usec", "=u4"), ("offset", "=u4"), ("caplen", "=u4")]
)

# libpcap reports some link types with a DLT value that differs from the
# LINKTYPE value written to PCAP files; all others are the same number.
_DLT_TO_LINKTYPE = {pcapy.DLT_RAW: 101, pcapy.DLT_ATM_RFC1483: 100}

# pcap_activate() status codes (pcap/pcap.h): reason text and fix for each.
# TODO: pcapy-ng has no pcap_geterr(), so an activate() failure is reported by
# its status code's meaning; libpcap's own detail (e.g. which ioctl failed) is
# lost, which matters only for the generic status -1.
_FIX_IFACE = "check 'ip link' and pass an existing interface with --iface"
_FIX_PERM = "run as root or grant CAP_NET_RAW and CAP_NET_ADMIN to the program"
_ACTIVATE_ERRORS = {
    -1: ("generic libpcap error", _FIX_IFACE),
    -4: ("handle already activated", "open each LiveCapture only once"),
    -5: ("No such device", _FIX_IFACE),
    -6: ("monitor mode not supported", _FIX_IFACE),
    -8: ("Permission denied", _FIX_PERM),
    -9: ("interface is down", "bring it up with 'ip link set {interface} up'"),
    -11: ("promiscuous mode not permitted", _FIX_PERM),
}
_ACTIVATE_WARNINGS = {
    1: "generic libpcap warning",
    2: "promiscuous mode not supported",
    3: "timestamp type not supported",
}

FANOUT_MODES = (
    pcapy.PACKET_FANOUT_HASH,
    pcapy.PACKET_FANOUT_LB,
    pcapy.PACKET_FANOUT_CPU,
    pcapy.PACKET_FANOUT_ROLLOVER,
    pcapy.PACKET_FANOUT_RND,
)


@contextlib.contextmanager
def _pcap_errors(action: str, fix: str) -> Iterator[None]:
    """Turn every pcapy failure inside the block into one CaptureError.

    The message reads "<action> (<libpcap's reason>); <fix>".
    """
    try:
        yield
    except (pcapy.PcapError, ValueError, OSError) as exc:
        raise CaptureError(f"{action} ({exc}); {fix}") from exc


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(
            f"capture setting {name} = {value} is out of range; set {low} to {high}"
        )


class LiveCapture:
    """Packets from one interface, read with libpcap, as PacketBatch objects.

    `fanout` = (group_id, mode) joins a Linux PACKET_FANOUT group, so several
    worker processes opening the same interface and group share its packets
    (mode PACKET_FANOUT_HASH keeps each session on one worker).
    """

    def __init__(
        self,
        interface: str,
        snaplen: int = 65535,
        promisc: bool = True,
        buffer_mb: int = 64,
        bpf: str | None = None,
        timeout_ms: int = 100,
        fanout: tuple[int, int] | None = None,
    ) -> None:
        _check_range("snaplen", snaplen, 1, MAX_SNAPLEN)
        _check_range("buffer_mb", buffer_mb, 1, MAX_BUFFER_MB)
        _check_range("timeout_ms", timeout_ms, 1, MAX_TIMEOUT_MS)
        if fanout is not None:
            _check_fanout(fanout)
        self.interface = interface
        self.snaplen = snaplen
        self.promisc = promisc
        self.buffer_mb = buffer_mb
        self.bpf = bpf
        self.timeout_ms = timeout_ms
        self.fanout = fanout
        self._pcap: Any = None
        self._linktype: int | None = None
        # Held around every call on the handle: stats() and close() may come
        # from another thread than the one iterating batches().
        self._lock = threading.Lock()
        self._packets = 0
        self._bytes = 0
        self._batches = 0
        self._final_pcap_stats: tuple[int, int, int] | None = None

    @property
    def linktype(self) -> int:
        """LINKTYPE_* of the interface; known once `open()` has succeeded."""
        if self._linktype is None:
            raise CaptureError(
                f"link type of interface {self.interface!r} is unknown because "
                "the capture is not open; call open() first"
            )
        return self._linktype

    def open(self) -> None:
        """Open and activate the interface, then apply the BPF filter and fanout."""
        if self._pcap is not None:
            raise CaptureError(
                f"capture on interface {self.interface!r} is already open; "
                "open each LiveCapture only once"
            )
        pcap = self._activate()
        try:
            self._apply_filter(pcap)
            self._join_fanout(pcap)
            action = self._where("cannot set non-blocking mode on")
            with _pcap_errors(action, _FIX_IFACE):
                pcap.setnonblock(1)
        except BaseException:
            pcap.close()
            raise
        self._pcap = pcap
        self._linktype = _DLT_TO_LINKTYPE.get(pcap.datalink(), pcap.datalink())
        logger.info(
            "capture started interface=%s linktype=%d snaplen=%d bpf=%r fanout=%s",
            self.interface,
            self._linktype,
            self.snaplen,
            self.bpf,
            self.fanout,
        )

    def batches(
        self, stop: threading.Event, max_packets: int = 512
    ) -> Iterator[PacketBatch]:
        """Yield batches of up to `max_packets` packets until `stop` is set.

        Never yields an empty batch. Returns within about `timeout_ms` of
        `stop` being set, whether packets are arriving or not.
        """
        _check_range("max_packets", max_packets, 1, 1 << 20)
        poller = select.poll()
        poller.register(self._require_open().getfd(), select.POLLIN)
        while not stop.is_set():
            batch = self._read_batch(max_packets)
            if batch is not None:
                yield batch
            elif self._pcap is None:
                return  # closed by another thread
            else:
                poller.poll(self.timeout_ms)

    def stats(self) -> dict[str, int]:
        """Counters since open(): libpcap's and ours; final values after close().

        libpcap's `received` counts every packet that passed the BPF filter,
        `dropped` ones included; ours count what `batches()` delivered.
        """
        with self._lock:
            received, dropped, interface_dropped = self._pcap_stats()
            return {
                "received": received,
                "dropped": dropped,
                "interface_dropped": interface_dropped,
                "packets": self._packets,
                "bytes": self._bytes,
                "batches": self._batches,
            }

    def close(self) -> None:
        """Release the interface; stats() keeps returning the final counters."""
        with self._lock:
            if self._pcap is None:
                return
            with contextlib.suppress(CaptureError):
                self._final_pcap_stats = self._pcap_stats()
            self._pcap.close()
            self._pcap = None
        final = self.stats()
        logger.info(
            "capture stopped interface=%s packets=%d bytes=%d dropped=%d "
            "interface_dropped=%d",
            self.interface,
            final["packets"],
            final["bytes"],
            final["dropped"],
            final["interface_dropped"],
        )

    def __enter__(self) -> LiveCapture:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _where(self, what: str) -> str:
        return f"{what} interface {self.interface!r}"

    def _activate(self) -> Any:
        """Create, configure and activate a pcap handle; the handle or CaptureError."""
        action = self._where("cannot open")
        with _pcap_errors(action, _FIX_IFACE):
            pcap = pcapy.create(self.interface)
            statuses = [
                pcap.set_snaplen(self.snaplen),
                pcap.set_promisc(int(self.promisc)),
                pcap.set_timeout(self.timeout_ms),
                pcap.set_buffer_size(self.buffer_mb << 20),
            ]
            statuses.append(pcap.activate())
        failures = [s for s in statuses if s is not None and s < 0]
        if failures:
            pcap.close()
            reason, fix = _ACTIVATE_ERRORS.get(
                failures[0], (f"libpcap status {failures[0]}", _FIX_IFACE)
            )
            fix = fix.format(interface=self.interface)
            raise CaptureError(f"{action} ({reason}); {fix}")
        self._log_warnings(statuses)
        return pcap

    def _log_warnings(self, statuses: list[int | None]) -> None:
        for status in statuses:
            if status is not None and status > 0:
                logger.warning(
                    "capture degraded interface=%s warning=%r",
                    self.interface,
                    _ACTIVATE_WARNINGS.get(status, f"libpcap status {status}"),
                )

    def _apply_filter(self, pcap: Any) -> None:
        if self.bpf is None:
            return
        action = f"invalid BPF filter {self.bpf!r} on interface {self.interface!r}"
        with _pcap_errors(action, "fix the expression; see 'man pcap-filter'"):
            pcap.setfilter(self.bpf)

    def _join_fanout(self, pcap: Any) -> None:
        if self.fanout is None:
            return
        group_id, mode = self.fanout
        action = self._where(f"cannot join fanout group {group_id} mode {mode} on")
        fix = "give every worker on this interface the same group id and mode"
        with _pcap_errors(action, fix):
            pcap.set_fanout(group_id, mode)

    def _require_open(self) -> Any:
        if self._pcap is None:
            raise CaptureError(
                f"capture on interface {self.interface!r} is not open; "
                "call open() before batches()"
            )
        return self._pcap

    def _read_batch(self, max_packets: int) -> PacketBatch | None:
        """One next_batch call as a PacketBatch; None when none was ready or closed."""
        action = self._where("capture failed on")
        fix = "check that the interface still exists and is up"
        with self._lock, _pcap_errors(action, fix):
            if self._pcap is None:
                return None
            data, packed = self._pcap.next_batch(max_packets)
        if not packed:
            return None
        batch = _to_batch(data, packed, self.linktype)
        with self._lock:
            self._packets += len(batch)
            self._bytes += int(batch.caplen.sum(dtype=np.int64))
            self._batches += 1
        logger.debug(
            "capture batch interface=%s packets=%d", self.interface, len(batch)
        )
        return batch

    def _pcap_stats(self) -> tuple[int, int, int]:
        """libpcap's (received, dropped, interface dropped); caller holds _lock."""
        pcap = self._pcap
        if pcap is None:
            return self._final_pcap_stats or (0, 0, 0)
        with _pcap_errors(self._where("cannot read counters of"), _FIX_IFACE):
            received, dropped, interface_dropped = pcap.stats()
        return int(received), int(dropped), int(interface_dropped)


def _check_fanout(fanout: tuple[int, int]) -> None:
    group_id, mode = fanout
    _check_range("fanout group id", group_id, 0, 0xFFFF)
    if mode not in FANOUT_MODES:
        raise ConfigError(
            f"capture setting fanout mode = {mode} is unknown; use one of "
            f"pcapy.PACKET_FANOUT_* {FANOUT_MODES}"
        )


def _to_batch(data: bytes, packed: bytes, linktype: int) -> PacketBatch:
    """Build a PacketBatch from next_batch's bytes and 16-byte meta records."""
    meta = np.frombuffer(packed, dtype=_META_DTYPE)
    n = len(meta)
    caplen = meta["caplen"].astype(np.uint32)
    ts_ns = meta["sec"].astype(np.int64) * NS_PER_S
    ts_ns += meta["usec"].astype(np.int64) * NS_PER_US
    # TODO: pcapy-ng's next_batch reports no wire length, so wirelen is set to
    # caplen; a packet cut by snaplen looks as long as its captured part, so PCAP
    # records and byte counts understate it. Needs wirelen from pcapy-ng.
    return PacketBatch(
        data=data,
        offset=meta["offset"].astype(np.int64),
        caplen=caplen,
        wirelen=caplen.copy(),
        ts_ns=ts_ns,
        linktype=np.full(n, linktype, dtype=np.uint16),
        precision=np.full(n, PRECISION_US, dtype=np.uint8),
    )
