"""Live capture: the first pipeline stage when reading from an interface.

Packets come from the kernel through libpcap, driven from C
(`fpc._fastpath.Capture`, csrc/capture.c): once `batches()` starts, a native
thread runs pcap_dispatch and pushes every packet, with its wire length, into
a `PacketRing` (fpc.ring) as a pcap record, without the GIL. The thread that
iterates `batches()` pops spans of records from the ring as framed
`PacketBatch`es (fpc.packets), which the PCAP writer writes as they are.
`stats()` and `close()` may be called from another thread. Setting the stop
event ends the native thread at once (it polls a wake-up pipe too), whether
the interface is idle or busy; what the ring holds is still handed out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from fpc import _fastpath
from fpc.errors import CaptureError, ConfigError
from fpc.packets import PacketBatch
from fpc.ring import PacketRing

logger = logging.getLogger(__name__)

MAX_SNAPLEN = 262144  # libpcap's own limit
MAX_BUFFER_MB = 2047  # libpcap takes the size in bytes as a C int
MAX_TIMEOUT_MS = 10_000

# Packets and record bytes per batch popped from the ring, at most, and how
# long a pop waits for a full batch once a packet is there. Every batch costs
# the pipeline a fixed 0.2-0.4 ms (numpy set-up of each stage, the writer's
# write, the session table's grouping), so small batches cost more per packet:
# offline, 200k packets cost 1.9 s of CPU in batches of 256, 1.3 s in 1024
# and 1.2 s in 4096 (the size capture files are read in). Live at 20,000
# packets/s with two workers (10,000 each), 200k packets cost 9.4-10.7 µs
# each with 100 ms of linger and 7.9-9.0 µs with 300 ms. The linger also
# bounds how long a stop waits (one pop), so it stays well under a second.
# The byte cap bounds a batch's buffer when packets are large (jumbo frames,
# GRO on veth).
BATCH_PACKETS = 4096
BATCH_BYTES = 8 << 20
LINGER_S = 0.3
RING_BYTES = 128 << 20  # records queued between the capture thread and processing
RING_SLOTS = 1 << 18

# libpcap reports some link types with a DLT value that differs from the
# LINKTYPE value written to PCAP files: DLT_RAW (12 on Linux) and
# DLT_ATM_RFC1483 (11); all others are the same number.
_DLT_TO_LINKTYPE = {12: 101, 11: 100}

# pcap_activate() status codes (pcap/pcap.h): reason text and fix for each.
# For the generic -1, libpcap's own message is the reason.
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

FANOUT_HASH = _fastpath.PACKET_FANOUT_HASH  # keeps each session on one worker
FANOUT_MODES = (
    _fastpath.PACKET_FANOUT_HASH,
    _fastpath.PACKET_FANOUT_LB,
    _fastpath.PACKET_FANOUT_CPU,
    _fastpath.PACKET_FANOUT_ROLLOVER,
    _fastpath.PACKET_FANOUT_RND,
)


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(
            f"capture setting {name} = {value} is out of range; set {low} to {high}"
        )


class LiveCapture:
    """Packets from one interface, read with libpcap, as PacketBatch objects.

    `fanout` = (group_id, mode) joins a Linux PACKET_FANOUT group, so several
    worker processes opening the same interface and group share its packets
    (mode FANOUT_HASH keeps each session on one worker). The native thread
    starts with the first `batches()`: until then the kernel buffer holds
    the packets.
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
        self._handle: _fastpath.Capture | None = None
        self._ring: PacketRing | None = None
        self._linktype: int | None = None
        self._started = False
        self._closing = False
        self._final_stats = dict.fromkeys(_NATIVE_COUNTERS, 0)
        # Our counters and the open/close state; the handle is thread-safe.
        self._lock = threading.Lock()
        self._packets = 0
        self._bytes = 0
        self._batches = 0

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
        if self._handle is not None:
            raise CaptureError(
                f"capture on interface {self.interface!r} is already open; "
                "open each LiveCapture only once"
            )
        handle = self._activate()
        try:
            self._apply_filter(handle)
            self._join_fanout(handle)
            dlt = handle.datalink()
        except BaseException:
            handle.close()
            raise
        self._handle = handle
        self._ring = PacketRing(RING_BYTES, RING_SLOTS, shared=False)
        self._linktype = _DLT_TO_LINKTYPE.get(dlt, dlt)
        logger.info(
            "capture started interface=%s linktype=%d snaplen=%d buffer_mb=%d bpf=%r "
            "fanout=%s",
            self.interface,
            self._linktype,
            self.snaplen,
            self.buffer_mb,
            self.bpf,
            self.fanout,
        )

    def batches(
        self,
        stop: threading.Event,
        max_packets: int = BATCH_PACKETS,
        idle: bool = False,
    ) -> Iterator[PacketBatch]:
        """Yield batches of up to `max_packets` packets until `stop` is set.

        With `idle`, an empty batch comes after each `timeout_ms` without
        packets (a caller's chance for periodic work); else none is empty.
        Once `stop` is set, the native thread ends at once and the packets
        already in the ring are still yielded. Raises CaptureError if
        libpcap fails (the interface went away).
        """
        _check_range("max_packets", max_packets, 1, RING_SLOTS)
        ring = self._start()
        try:
            while True:
                if stop.is_set():
                    self._stop_thread()
                batch = ring.pop(
                    max_packets, self.timeout_ms / 1000, LINGER_S, BATCH_BYTES
                )
                if batch is None:
                    break
                if len(batch):
                    self._count(batch)
                    yield batch
                elif idle:
                    yield batch
        finally:
            self._stop_thread()
        self._raise_failure()

    def stats(self) -> dict[str, int]:
        """Counters since open(): libpcap's and ours; final values after close().

        libpcap's `received` counts every packet that passed the BPF filter,
        `dropped` ones included; `ring_dropped` counts packets given up at a
        stop because the ring was full; `packets`, `bytes` (captured) and
        `batches` count what `batches()` delivered, `wire_bytes` the lengths
        on the wire of the packets the native thread captured.
        """
        with self._lock:
            handle, ring = self._handle, self._ring
            ours = {"packets": self._packets, "bytes": self._bytes,
                    "batches": self._batches}  # fmt: skip
        if handle is None:
            theirs = self._final_stats
        else:
            theirs = _native_stats(handle, ring)
        return {**theirs, **ours}

    def close(self) -> None:
        """Release the interface; stats() keeps returning the final counters."""
        with self._lock:
            handle = self._handle
            if handle is None or self._closing:
                return
            self._closing = True
        handle.close()  # ends the thread; the ring is closed and drains
        final_native = _native_stats(handle, self._ring)
        with self._lock:
            self._final_stats, self._handle = final_native, None
        final = self.stats()
        logger.info(
            "capture stopped interface=%s packets=%d bytes=%d wire_bytes=%d "
            "received=%d dropped=%d interface_dropped=%d ring_dropped=%d",
            self.interface,
            final["packets"],
            final["bytes"],
            final["wire_bytes"],
            final["received"],
            final["dropped"],
            final["interface_dropped"],
            final["ring_dropped"],
        )

    def __enter__(self) -> LiveCapture:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _where(self, what: str) -> str:
        return f"{what} interface {self.interface!r}"

    def _activate(self) -> _fastpath.Capture:
        """Create, configure and activate a handle; the handle or CaptureError."""
        action = self._where("cannot open")
        try:
            handle = _fastpath.Capture(
                self.interface,
                self.snaplen,
                int(self.promisc),
                self.timeout_ms,
                self.buffer_mb << 20,
            )
        except OSError as exc:
            raise CaptureError(f"{action} ({exc}); {_FIX_IFACE}") from exc
        status, detail = handle.activate()
        if status < 0:
            handle.close()
            reason, fix = _ACTIVATE_ERRORS.get(
                status, (f"libpcap status {status}", _FIX_IFACE)
            )
            if status == -1 and detail:
                reason = detail
            fix = fix.format(interface=self.interface)
            raise CaptureError(f"{action} ({reason}); {fix}")
        if status > 0:
            logger.warning(
                "capture degraded interface=%s warning=%r detail=%r",
                self.interface,
                _ACTIVATE_WARNINGS.get(status, f"libpcap status {status}"),
                detail,
            )
        return handle

    def _apply_filter(self, handle: _fastpath.Capture) -> None:
        if self.bpf is None:
            return
        try:
            handle.setfilter(self.bpf)
        except ValueError as exc:
            raise CaptureError(
                f"invalid BPF filter {self.bpf!r} on interface {self.interface!r} "
                f"({exc}); fix the expression; see 'man pcap-filter'"
            ) from exc

    def _join_fanout(self, handle: _fastpath.Capture) -> None:
        if self.fanout is None:
            return
        group_id, mode = self.fanout
        # TODO: the kernel spreads packets by 5-tuple, but DHCP sessions are
        # keyed by client (csrc/transaction.c): with several workers a request
        # and its reply can land on different workers, each with part of the
        # exchange. A classic BPF fanout program (PACKET_FANOUT_CBPF) that
        # hashes DHCP by chaddr would keep an exchange on one worker.
        try:
            handle.set_fanout(group_id, mode)
        except OSError as exc:
            action = self._where(f"cannot join fanout group {group_id} mode {mode} on")
            raise CaptureError(
                f"{action} ({exc.strerror}); give every worker on this interface "
                "the same group id and mode"
            ) from exc

    def _start(self) -> PacketRing:
        """Start the native thread on first use; the ring it fills."""
        with self._lock:
            handle, ring = self._handle, self._ring
            if handle is None or ring is None:
                raise CaptureError(
                    f"capture on interface {self.interface!r} is not open; "
                    "call open() before batches()"
                )
            if not self._started:
                handle.start(ring.native, self.linktype)
                self._started = True
        return ring

    def _stop_thread(self) -> None:
        with self._lock:
            handle = self._handle
        if handle is not None:
            handle.stop()

    def _count(self, batch: PacketBatch) -> None:
        with self._lock:
            self._packets += len(batch)
            self._bytes += int(batch.caplen.sum())
            self._batches += 1

    def _raise_failure(self) -> None:
        """CaptureError if the native thread ended because libpcap failed."""
        with self._lock:
            handle = self._handle
        failure = handle.failure() if handle is not None else None
        if failure is not None:
            raise CaptureError(
                f"capture failed on interface {self.interface!r} ({failure}); "
                "check that the interface still exists and is up"
            )


_NATIVE_COUNTERS = (
    "received", "dropped", "interface_dropped", "ring_dropped", "wire_bytes"
)  # fmt: skip


def _native_stats(handle: _fastpath.Capture, ring: PacketRing | None) -> dict[str, int]:
    native = handle.stats()
    return {
        "received": native["received"],
        "dropped": native["dropped"],
        "interface_dropped": native["interface_dropped"],
        "ring_dropped": ring.stats()["dropped"] if ring is not None else 0,
        "wire_bytes": native["wire_bytes"],
    }


def _check_fanout(fanout: tuple[int, int]) -> None:
    group_id, mode = fanout
    _check_range("fanout group id", group_id, 0, 0xFFFF)
    if mode not in FANOUT_MODES:
        raise ConfigError(
            f"capture setting fanout mode = {mode} is unknown; use one of "
            f"fpc.capture.FANOUT_MODES {FANOUT_MODES}"
        )
