"""Type stubs of the C extension fpc._fastpath (sources in csrc/)."""

from typing import Self, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

def decode_batch(
    data: Buffer,
    offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    linktype: npt.NDArray[np.uint16],
    out: npt.NDArray[np.void],
    key_vlan: bool = False,
) -> None:
    """Decode packet i = data[offset[i]:offset[i] + caplen[i]] into out[i].

    `out` has the dtype fpc.decode.DECODED (checked: a layout mismatch raises
    ValueError). The GIL is released while the packets are decoded. With
    `key_vlan` the session key holds the outer two VLAN ids, else zeros.
    """

def pack_records(
    data: Buffer,
    offset: npt.NDArray[np.int64],
    caplen: npt.NDArray[np.uint32],
    wirelen: npt.NDArray[np.uint32],
    ts_ns: npt.NDArray[np.int64],
    precision: int,
) -> bytes:
    """Classic-pcap records (16-byte little-endian header + bytes) of every packet.

    `precision` is 6 (microsecond timestamps) or 9 (nanosecond timestamps).
    """

def scan_pcap(
    data: Buffer,
    pos: int,
    end: int,
    max_bytes: int,
    max_caplen: int,
    swap: bool,
    offset: npt.NDArray[np.int64],
    sec: npt.NDArray[np.uint32],
    frac: npt.NDArray[np.uint32],
    caplen: npt.NDArray[np.uint32],
    wirelen: npt.NDArray[np.uint32],
) -> tuple[int, int, int]:
    """Walk the whole classic-pcap records of data[pos:end] (GIL released).

    Takes at most len(offset) records and stops past `max_bytes` from `pos`
    (the first record may exceed it alone). Fills each record's start offset
    and header fields. Returns (count, offset after the last record taken,
    the caplen above `max_caplen` that stopped the walk, or -1).
    """

@final
class SessionTable:
    """The active sessions of one capture (csrc/session.c), keyed by the
    normalized key of fpc.decode. Times are nanoseconds."""

    def __new__(
        cls,
        *,
        tcp_timeout_ns: int = ...,
        udp_timeout_ns: int = ...,
        other_timeout_ns: int = ...,
        tcp_close_ns: int = ...,
        segment_age_ns: int = ...,
        segment_packets: int = ...,
        max_sessions: int = ...,
        app_bytes: int = ...,
        max_positions: int = ...,
        app_layer: bool = ...,
        seed: int = ...,
    ) -> Self: ...
    def __len__(self) -> int: ...
    def add(
        self,
        dec: npt.NDArray[np.void],
        ts_ns: npt.NDArray[np.int64],
        wirelen: npt.NDArray[np.uint32],
        caplen: npt.NDArray[np.uint32],
        files: npt.NDArray[np.int64],
        pos: npt.NDArray[np.int64],
        app_index: npt.NDArray[np.int64],
        app_serial: npt.NDArray[np.uint64],
        app_dir: npt.NDArray[np.uint8],
        /,
    ) -> int:
        """Account a batch (GIL released), then end the sessions idle as of its
        newest packet. The packets the app-layer parsers want are written to
        app_index/app_serial/app_dir (direction 0 = client to server); returns
        how many. Raises MemoryError if the table cannot grow."""
    def expire(self, now_ns: int, /) -> None:
        """End the sessions idle or closed as of now_ns."""
    def flush(self) -> None:
        """End every session."""
    def take(self) -> tuple[bytes, bytes]:
        """Ended sessions and segments since the last call, as rows of the dtype
        built from layouts()[0], and their packet positions (layouts()[2])."""
    def app_done(self, serial: int, directions: int = 3, /) -> int:
        """Offer no more packets of session `serial` to the parsers in
        `directions` (bit 0: client to server, bit 1: server to client);
        the directions stopped so far (3 for a session that ended)."""
    def syn_seqs(self, serial: int, /) -> tuple[int | None, int | None]:
        """Sequence numbers of the SYNs session `serial` saw per client direction
        before its first packet for the parsers (None: no SYN that way)."""
    def counters(self) -> dict[str, int]:
        """sessions, segments, evicted, position_cuts, memory_bytes."""
    @staticmethod
    def layouts() -> tuple[
        list[tuple[str, str, int]], int, tuple[tuple[str, str, int], ...], int
    ]:
        """(name, numpy format, offset) of each field of an ended record, its
        size, the same for a packet position, its size."""

@final
class Ring:
    """A single-producer single-consumer ring of pcap records in a shared
    buffer (csrc/ring.c). With data_bytes and slots, formats the buffer;
    without, attaches to a ring formatted there before."""

    def __new__(cls, buffer: Buffer, data_bytes: int = 0, slots: int = 0) -> Self: ...
    @property
    def data_bytes(self) -> int:
        """Bytes of the record area."""
    @property
    def slots(self) -> int:
        """Packets the ring can hold at most."""
    def push(
        self,
        data: Buffer,
        offset: npt.NDArray[np.int64],
        caplen: npt.NDArray[np.uint32],
        wirelen: npt.NDArray[np.uint32],
        ts_ns: npt.NDArray[np.int64],
        linktype: npt.NDArray[np.uint16],
        precision: npt.NDArray[np.uint8],
        timeout: float = 0.0,
        drop: bool = True,
    ) -> int:
        """Push every packet, waiting up to timeout s for room (< 0: for ever;
        GIL released). Returns how many went in; with drop, the rest count as
        dropped."""
    def pop(
        self,
        max_packets: int,
        timeout: float = 0.0,
        linger: float = 0.0,
        max_bytes: int = 0,
    ) -> tuple[bytes, bytes] | None:
        """(pcap records, 32-byte meta per packet); (b"", b"") after a timeout;
        None once closed and empty. Once a packet is there, waits up to linger
        s more for max_packets or max_bytes of records; records past max_bytes
        (0: no limit) wait for the next pop, unless the first is larger alone."""
    def close(self) -> None:
        """No more packets: the consumer drains the ring, then sees None."""
    def stats(self) -> dict[str, int | bool]:
        """packets_in, packets_out, dropped, queued, bytes_queued, closed."""
    @staticmethod
    def layout_size(data_bytes: int, slots: int) -> int:
        """Bytes of the block a ring of this size needs."""

PACKET_FANOUT_HASH: int
PACKET_FANOUT_LB: int
PACKET_FANOUT_CPU: int
PACKET_FANOUT_ROLLOVER: int
PACKET_FANOUT_RND: int

class Capture:
    """A libpcap handle on an interface (csrc/capture.c), not yet activated,
    whose packets a native thread pushes into a Ring once started."""

    def __new__(
        cls,
        interface: str,
        snaplen: int,
        promisc: int,
        timeout_ms: int,
        buffer_bytes: int,
    ) -> Self: ...
    def activate(self) -> tuple[int, str]:
        """(status, libpcap's message) of pcap_activate: < 0 failed, > 0 a warning."""
    def setfilter(self, expression: str, /) -> None:
        """Compile and set a BPF filter; ValueError with libpcap's reason."""
    def set_fanout(self, group: int, mode: int, /) -> None:
        """Join PACKET_FANOUT group `group` in `mode`; OSError on failure."""
    def datalink(self) -> int:
        """The DLT_* of the activated handle."""
    def start(self, ring: Ring, linktype: int, /) -> None:
        """Start the capture thread; it is `ring`'s only producer from now on."""
    def stop(self) -> None:
        """End the capture thread and wait for it (GIL released); closes the ring."""
    def close(self) -> None:
        """Stop, then release the interface; stats() keeps the last values."""
    def stats(self) -> dict[str, int]:
        """received, dropped, interface_dropped (libpcap's); captured,
        captured_bytes, wire_bytes (packets put in the ring)."""
    def failure(self) -> str | None:
        """Why the capture thread ended by itself (libpcap's text), or None."""
