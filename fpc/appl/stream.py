"""Per-direction TCP reassembly for the app-layer parsers.

In: the TCP segments of one direction of a session, in capture order (seq,
payload, flags). Out: the bytes of that direction in sequence order, each
byte once. Retransmitted and overlapping bytes are dropped (the first copy
wins); segments that arrive early are held until the hole before them fills.
A hole that never fills (too much held), a FIN or a RST ends the stream.
Sequence numbers are compared modulo 2**32, so wrap-around is handled.
"""

from __future__ import annotations

# Same bits as fpc.decode.TCP_*; not imported because fpc.decode loads the C
# extension and the parsers must work without it.
TCP_FIN = 1
TCP_SYN = 2
TCP_RST = 4

SEQ_MOD = 1 << 32
MAX_HELD_BYTES = 64 * 1024  # early segments kept per direction
MAX_HELD_SEGMENTS = 64
MAX_AHEAD_BYTES = 1 << 24  # a segment further ahead than this is garbage

END_FIN = "fin"
END_RST = "rst"
END_GAP = "gap"


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance (wrap-around safe)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


class TcpStream:
    """Reassembles one direction; `accept` returns the newly in-order bytes."""

    __slots__ = ("next_seq", "held", "held_bytes", "fin_seq", "ended", "dropped")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.held: dict[int, bytes] | None = None  # made when a segment is early
        self.held_bytes = 0
        self.fin_seq: int | None = None
        self.ended: str | None = None  # END_* once the stream is over
        self.dropped = 0  # retransmitted or overlapping bytes not delivered

    def accept(self, seq: int | None, payload: bytes, flags: int) -> list[bytes]:
        if self.ended:
            return []
        if seq is None:
            return [payload] if payload else []
        if (
            seq == self.next_seq
            and payload
            and not flags & (TCP_SYN | TCP_FIN | TCP_RST)
            and not self.held
            and self.fin_seq is None
        ):
            # Most segments continue the stream exactly: what _place and
            # _check_end would do for them, without their calls.
            self.next_seq = (seq + len(payload)) % SEQ_MOD
            return [payload]
        if flags & TCP_SYN:
            seq = (seq + 1) % SEQ_MOD
            if self.next_seq is None:
                self.next_seq = seq
        if self.next_seq is None:
            # TODO: without a SYN the first segment seen sets the start; an
            # earlier segment that arrives later is dropped as a retransmission.
            self.next_seq = seq
        out: list[bytes] = []
        if payload:
            self._place(seq, payload, out)
        self._check_end(seq, len(payload), flags)
        return out

    def _place(self, seq: int, payload: bytes, out: list[bytes]) -> None:
        assert self.next_seq is not None
        off = seq_diff(seq, self.next_seq)
        if off > 0:
            self._hold(seq, payload, off)
            return
        self._deliver(payload, -off, out)
        self._drain(out)

    def _deliver(self, payload: bytes, skip: int, out: list[bytes]) -> None:
        if skip >= len(payload):
            self.dropped += len(payload)
            return
        self.dropped += skip
        data = payload[skip:] if skip else payload
        out.append(data)
        assert self.next_seq is not None
        self.next_seq = (self.next_seq + len(data)) % SEQ_MOD

    def _hold(self, seq: int, payload: bytes, off: int) -> None:
        if off > MAX_AHEAD_BYTES:
            self.dropped += len(payload)
            return
        if self.held is None:
            self.held = {}
        old = self.held.get(seq)
        if old is not None and len(old) >= len(payload):
            self.dropped += len(payload)
            return
        self.held_bytes += len(payload) - (len(old) if old else 0)
        self.held[seq] = payload
        if self.held_bytes > MAX_HELD_BYTES or len(self.held) > MAX_HELD_SEGMENTS:
            self._end(END_GAP)

    def _drain(self, out: list[bytes]) -> None:
        while self.held:
            assert self.next_seq is not None
            ready = [s for s in self.held if seq_diff(s, self.next_seq) <= 0]
            if not ready:
                return
            for s in ready:
                payload = self.held.pop(s)
                self.held_bytes -= len(payload)
                self._deliver(payload, -seq_diff(s, self.next_seq), out)

    def _check_end(self, seq: int, length: int, flags: int) -> None:
        if flags & TCP_RST:
            self._end(END_RST)
            return
        if flags & TCP_FIN:
            self.fin_seq = (seq + length) % SEQ_MOD
        if self.fin_seq is not None and self.next_seq is not None:
            if seq_diff(self.fin_seq, self.next_seq) <= 0:
                self._end(END_FIN)

    def _end(self, reason: str) -> None:
        self.ended = reason
        self.held = None
        self.held_bytes = 0
