"""Bounds-checked reads of packet bytes, shared by every app-layer parser.

In: one complete protocol unit (a DNS message, a TLS handshake message, ...)
that a parser has already framed. Out: numbers and byte strings; a read past
the end raises `ParseError`, so no parser indexes packet bytes by hand.
"""

from __future__ import annotations

import struct


class ParseError(ValueError):
    """Malformed or truncated app-layer data; ends one parser for one session."""


class Cursor:
    """Reads big-endian fields from `buf[pos:end]`, never past `end`."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else min(end, len(buf))

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise ParseError(
                f"{what} needs {n} bytes at offset {start}, "
                f"only {self.end - start} left"
            )
        self.pos = start + n
        return start

    def u8(self, what: str = "u8") -> int:
        return self.buf[self._need(1, what)]

    def u16(self, what: str = "u16") -> int:
        i = self._need(2, what)
        return (self.buf[i] << 8) | self.buf[i + 1]

    def u24(self, what: str = "u24") -> int:
        i = self._need(3, what)
        return (self.buf[i] << 16) | (self.buf[i + 1] << 8) | self.buf[i + 2]

    def u32(self, what: str = "u32") -> int:
        i = self._need(4, what)
        return int.from_bytes(self.buf[i : i + 4], "big")

    def u16le(self, what: str = "u16le") -> int:
        i = self._need(2, what)
        return self.buf[i] | (self.buf[i + 1] << 8)

    def u32le(self, what: str = "u32le") -> int:
        i = self._need(4, what)
        return int.from_bytes(self.buf[i : i + 4], "little")

    def varint(self, what: str = "varint") -> int:
        """A QUIC variable-length integer (RFC 9000 section 16)."""
        first = self.u8(what)
        size = 1 << (first >> 6)
        value = first & 0x3F
        if size > 1:
            i = self._need(size - 1, what)
            value = (value << (8 * (size - 1))) | int.from_bytes(
                self.buf[i : i + size - 1], "big"
            )
        return value

    def take(self, n: int, what: str = "bytes") -> bytes:
        i = self._need(n, what)
        return bytes(self.buf[i : i + n])

    def skip(self, n: int, what: str = "bytes") -> None:
        self._need(n, what)

    def sub(self, n: int, what: str = "block") -> Cursor:
        """A cursor over the next `n` bytes; this cursor moves past them."""
        i = self._need(n, what)
        return Cursor(self.buf, i, i + n)

    def u16_list(self, n: int, what: str = "u16 list") -> list[int]:
        """`n` bytes read as big-endian 16-bit numbers (`n` must be even)."""
        if n % 2:
            raise ParseError(f"{what} has odd length {n} at offset {self.pos}")
        i = self._need(n, what)
        return list(struct.unpack_from(f"!{n // 2}H", self.buf, i))
