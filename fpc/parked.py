"""UDP sessions whose datagrams no classifier recognized yet, one byte each.

In: `park(serial, tried)` when the session table drops the app state of such
a session (`fpc.appl.state.AppState.parked`); out: `tried(serial)` when its
next datagram comes, so classification goes on where it stopped. A million
idle sessions (a scan, a flood of one-packet flows) then cost the app layer
nine bytes each instead of a Python object.

Entries are indexed by the table slot packed in the low bits of a session
serial (csrc/session.c, SERIAL_INDEX_BITS), so the arrays grow with the
number of slots, not of sessions ever seen; the full serial is kept beside
the count, so a slot reused by a new session reads as never tried (serials
start above zero, so 0 marks a free entry).
"""

from __future__ import annotations

from array import array

SERIAL_INDEX_BITS = 27  # csrc/session.c: serial = counter << 27 | slot index
SLOT_MASK = (1 << SERIAL_INDEX_BITS) - 1
MIN_SLOTS = 1024


class ParkedProbes:
    """Datagrams tried per parked session, by table slot."""

    __slots__ = ("_serials", "_tried")

    def __init__(self) -> None:
        self._serials = array("Q")
        self._tried = bytearray()

    def park(self, serial: int, tried: int) -> None:
        slot = serial & SLOT_MASK
        if slot >= len(self._tried):
            self._grow(slot)
        self._serials[slot] = serial
        self._tried[slot] = min(tried, 255)

    def tried(self, serial: int) -> int:
        """Datagrams the session's parked state had tried; 0 if never parked."""
        slot = serial & SLOT_MASK
        if slot >= len(self._tried) or self._serials[slot] != serial:
            return 0
        return self._tried[slot]

    @property
    def memory_bytes(self) -> int:
        return len(self._tried) * (1 + self._serials.itemsize)

    def _grow(self, slot: int) -> None:
        size = max(MIN_SLOTS, len(self._tried))
        while size <= slot:
            size *= 2
        extra = size - len(self._tried)
        self._serials.frombytes(bytes(extra * self._serials.itemsize))
        self._tried.extend(bytes(extra))
