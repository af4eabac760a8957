"""The packet ring between the capture side and the processing side.

In: `PacketBatch`es pushed by one producer (live capture's native thread).
Out: batches popped by one consumer, in the same order. The ring (C,
`fpc._fastpath.Ring`) lives in an anonymous mapping, private to the process
(live capture) or shared, so that a ring made before `fork` can carry packets
to a child process (tested, not used by fpc itself since capture-file workers
read their input themselves). It holds packets as classic pcap records: a
popped span is ready for a PCAP file as it is, and each packet's position is
its offset in it.
Push and pop release the GIL while packets move and while they wait.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable

import numpy as np

from fpc import _fastpath
from fpc.packets import PacketBatch

logger = logging.getLogger(__name__)

DEFAULT_DATA_BYTES = 64 << 20  # records; a packet may take at most half
DEFAULT_SLOTS = 1 << 17  # packets queued at most
RECORD_HEADER_BYTES = 16
WAIT_STEP_S = 0.5  # a blocking push checks that its consumer lives this often

# One popped packet, as `_fastpath.Ring.pop` describes it (csrc/ring.h FpcRingMeta).
RING_META = np.dtype(
    [
        ("ts_ns", "<i8"),
        ("offset", "<i8"),  # of the record header in the popped records
        ("caplen", "<u4"),
        ("wirelen", "<u4"),
        ("linktype", "<u2"),
        ("precision", "u1"),
        ("pad", "V5"),
    ]
)


class RingClosed(Exception):
    """The consumer of a ring went away while the producer waited for room."""


class PacketRing:
    """One producer and one consumer; each side is used by one thread only."""

    def __init__(
        self,
        data_bytes: int = DEFAULT_DATA_BYTES,
        slots: int = DEFAULT_SLOTS,
        shared: bool = True,
    ) -> None:
        """`shared`: the mapping is shared with processes forked later. Else
        it is private to this process and its pages are allocated now, as the
        kernel does for libpcap's buffer, instead of one page fault per 4 KiB
        while the first packets arrive."""
        size = _fastpath.Ring.layout_size(data_bytes, slots)
        if shared:
            self._map = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
        else:
            flags = mmap.MAP_PRIVATE | getattr(mmap, "MAP_POPULATE", 0)
            self._map = mmap.mmap(-1, size, flags=flags)
        self._ring = _fastpath.Ring(self._map, data_bytes, slots)

    @property
    def native(self) -> _fastpath.Ring:
        """The C ring, for a native producer (`fpc._fastpath.Capture.start`)."""
        return self._ring

    @property
    def data_bytes(self) -> int:
        return int(self._ring.data_bytes)

    @property
    def slots(self) -> int:
        return int(self._ring.slots)

    def push(
        self, batch: PacketBatch, timeout_s: float = 0.0, drop: bool = True
    ) -> int:
        """Push `batch`; how many packets went in. With `drop`, the rest are counted."""
        return int(
            self._ring.push(
                batch.data,
                batch.offset,
                batch.caplen,
                batch.wirelen,
                batch.ts_ns,
                batch.linktype,
                batch.precision,
                timeout=timeout_s,
                drop=drop,
            )  # fmt: skip
        )

    def push_all(self, batch: PacketBatch, consumer_alive: Callable[[], bool]) -> None:
        """Push all of `batch`, waiting for room as long as the consumer lives."""
        done = 0
        while done < len(batch):
            pushed = self.push(_tail(batch, done), timeout_s=WAIT_STEP_S, drop=False)
            done += pushed
            if done == len(batch) or pushed:
                continue
            _check_fits(batch, done, self.data_bytes)
            if not consumer_alive():
                raise RingClosed(
                    f"ring consumer exited with {len(batch) - done} packets not "
                    "taken; see its log for the cause"
                )

    def pop_records(
        self,
        max_packets: int,
        timeout_s: float = 0.0,
        linger_s: float = 0.0,
        max_bytes: int = 0,
    ) -> tuple[bytes, np.ndarray] | None:
        """(pcap records back to back, RING_META per packet); None at the end.

        Once a packet is there, waits up to `linger_s` more for `max_packets`
        or `max_bytes` of records. Records past `max_bytes` (0: no limit) stay
        for the next pop, unless the first record alone is larger.
        """
        popped = self._ring.pop(
            max_packets, timeout=timeout_s, linger=linger_s, max_bytes=max_bytes
        )
        if popped is None:
            return None
        records, meta = popped
        return records, np.frombuffer(meta, dtype=RING_META)

    def pop(
        self,
        max_packets: int,
        timeout_s: float = 0.0,
        linger_s: float = 0.0,
        max_bytes: int = 0,
    ) -> PacketBatch | None:
        """Up to `max_packets` packets (none after a timeout); None at the end."""
        popped = self.pop_records(max_packets, timeout_s, linger_s, max_bytes)
        if popped is None:
            return None
        records, meta = popped
        return PacketBatch(
            data=records,
            offset=meta["offset"] + RECORD_HEADER_BYTES,
            caplen=np.ascontiguousarray(meta["caplen"]),
            wirelen=np.ascontiguousarray(meta["wirelen"]),
            ts_ns=np.ascontiguousarray(meta["ts_ns"]),
            linktype=np.ascontiguousarray(meta["linktype"]),
            precision=np.ascontiguousarray(meta["precision"]),
            framed=True,
        )

    def close(self) -> None:
        """The producer is done: the consumer drains what is left, then gets None."""
        self._ring.close()

    def stats(self) -> dict[str, int]:
        """packets_in, packets_out, dropped, queued, bytes_queued, closed (0/1)."""
        return {k: int(v) for k, v in self._ring.stats().items()}


def _tail(batch: PacketBatch, start: int) -> PacketBatch:
    if start == 0:
        return batch
    return PacketBatch(
        data=batch.data, offset=batch.offset[start:], caplen=batch.caplen[start:],
        wirelen=batch.wirelen[start:], ts_ns=batch.ts_ns[start:],
        linktype=batch.linktype[start:], precision=batch.precision[start:],
    )  # fmt: skip


def _check_fits(batch: PacketBatch, i: int, data_bytes: int) -> None:
    need = int(batch.caplen[i]) + RECORD_HEADER_BYTES
    if need > data_bytes // 2:
        raise ValueError(
            f"packet of {int(batch.caplen[i])} bytes does not fit in a ring of "
            f"{data_bytes} bytes; make the ring at least {2 * need} bytes"
        )
