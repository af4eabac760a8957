"""Bytes of one direction held until a whole message is there.

In: the chunks a parser gets for one direction. Out: the first bytes
(`peek`), whole messages (`take`), bytes passed over (`skip`). Appending is
amortized constant time, so a peer that sends a long message one byte per
TCP segment costs linear time, not the quadratic cost of joining the held
bytes to each new chunk.
"""

from __future__ import annotations

from collections.abc import Callable


class ByteBuffer:
    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def __len__(self) -> int:
        return len(self._buf)

    def add(self, data: bytes) -> None:
        self._buf += data

    def peek(self, n: int) -> bytes:
        return bytes(self._buf[:n])

    def take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def next_frame(
        self, head_len: int, frame_len: Callable[[bytes], int]
    ) -> bytes | None:
        """The next whole frame, or None until it is all here. `frame_len` gets
        the first `head_len` bytes and returns the frame's length, header
        included, at least `head_len` (it raises ParseError for a length the
        protocol forbids)."""
        if len(self._buf) < head_len:
            return None
        size = frame_len(bytes(self._buf[:head_len]))
        return self.take(size) if len(self._buf) >= size else None

    def rest(self) -> bytes:
        return self.take(len(self._buf))

    def clear(self) -> None:
        self._buf.clear()
