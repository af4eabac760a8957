"""The unit of work between the readers and every later stage: a batch of packets.

Readers (`fpc.reader` for files, `fpc.capture` for interfaces) fill a
`PacketBatch`; the decoder, the session table and the PCAP writer all take one.
A batch keeps every packet's bytes in one buffer so that later stages slice it
instead of copying per packet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Timestamp precision of a packet's source, kept so that the PCAP file it is
# written to uses the same unit (microsecond or nanosecond pcap magic).
PRECISION_US = 6
PRECISION_NS = 9


@dataclass
class PacketBatch:
    """`n` packets; packet i is data[offset[i] : offset[i] + caplen[i]]."""

    data: bytes
    offset: np.ndarray  # int64, start of each packet in `data`
    caplen: np.ndarray  # uint32, bytes captured
    wirelen: np.ndarray  # uint32, length on the wire (>= caplen)
    ts_ns: np.ndarray  # int64, nanoseconds since the Unix epoch
    linktype: np.ndarray  # uint16, LINKTYPE_* of each packet
    precision: np.ndarray  # uint8, PRECISION_US or PRECISION_NS
    # True when `data` holds pcap records and each packet's 16-byte record
    # header sits just before it (a batch popped from fpc.ring): the PCAP
    # writer then writes spans of `data` as they are instead of packing them.
    framed: bool = False

    def __len__(self) -> int:
        return len(self.offset)

    def packet(self, i: int) -> bytes:
        start = int(self.offset[i])
        return self.data[start : start + int(self.caplen[i])]

    @classmethod
    def from_list(
        cls,
        packets: list[tuple[int, int, bytes]],
        linktype: int,
        precision: int = PRECISION_US,
    ) -> PacketBatch:
        """Build a batch from (ts_ns, wirelen, bytes) tuples; for tests and tools."""
        data = b"".join(p[2] for p in packets)
        caplen = np.array([len(p[2]) for p in packets], dtype=np.uint32)
        offset = np.zeros(len(packets), dtype=np.int64)
        if len(packets) > 1:
            offset[1:] = np.cumsum(caplen[:-1], dtype=np.int64)
        n = len(packets)
        return cls(
            data=data,
            offset=offset,
            caplen=caplen,
            wirelen=np.array([p[1] for p in packets], dtype=np.uint32),
            ts_ns=np.array([p[0] for p in packets], dtype=np.int64),
            linktype=np.full(n, linktype, dtype=np.uint16),
            precision=np.full(n, precision, dtype=np.uint8),
        )

    def subset(self, keep: np.ndarray) -> PacketBatch:
        """The packets where `keep` is true (the data buffer is shared)."""
        return PacketBatch(
            data=self.data,
            offset=self.offset[keep],
            caplen=self.caplen[keep],
            wirelen=self.wirelen[keep],
            ts_ns=self.ts_ns[keep],
            linktype=self.linktype[keep],
            precision=self.precision[keep],
        )
