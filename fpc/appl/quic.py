"""QUIC parser: version, SNI and ALPN offers of the client's first flight.

In: the UDP datagrams of a session from `fpc.appl.state`. Out: the version in
`fpc.quic.version`, and from the ClientHello carried in the client's Initial
packets (decrypted with `fpc.appl.quic_initial`) the SNI, ALPN offers, JA3
and JA4 (`fpc.appl.tls_hello`). Google QUIC (Q033 to Q043) sends its client
hello (CHLO) in clear; its SNI and user agent tags are read too, as they are
from Facebook's Zero protocol, the same hello over TCP.

Layouts (RFC 9000 section 17.2; Google QUIC wire format, Q0xx)::

    IETF long header  1 1 type(2) xx(4) version(32) dcid_len(8) dcid ...
    gQUIC public hdr  flags(8) [cid(64) if 0x08] [version "Q0xx" if 0x01]
                      [nonce(32B)] packet_number(8..48) hash(96) frames
    CHLO              "CHLO" n(16le) pad(16le) n*(tag(32) end(32le)) values
"""

from __future__ import annotations

import re

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.quic_initial import (
    MIN_CLIENT_INITIAL,
    crypto_frames,
    decrypt_initial,
    initial_salt,
    is_initial,
    read_long_header,
    version_name,
)
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink
from fpc.appl.tls_hello import add_client_hello, read_client_hello

MAX_CRYPTO_BYTES = 64 * 1024  # ClientHello bytes gathered before giving up
MAX_DATAGRAMS = 16  # client datagrams read before giving up
MAX_CHLO_TAGS = 64
HS_CLIENT_HELLO = 1
_GQUIC_VERSION = re.compile(rb"Q0\d\d")
_GQUIC_FLAG_VERSION, _GQUIC_FLAG_CID = 0x01, 0x08
FBZERO_MAGIC = b"1QTV"
_CHLO_TAGS = {b"SNI\x00": "tls.client.server_name", b"UAID": "fpc.quic.user_agent"}


# TODO: the server's certificate travels in Handshake packets, whose keys come
# from the key exchange, so QUIC sessions have no tls.server.* fields; Google
# QUIC Q046 and later (IETF-style headers, Q050 encrypted) gives only its
# version today.


def _gquic_version(data: bytes) -> bytes | None:
    """The 'Q0xx' version of a client gQUIC packet, else None."""
    if len(data) < 13 or not data[0] & _GQUIC_FLAG_VERSION:
        return None
    at = 9 if data[0] & _GQUIC_FLAG_CID else 1
    version = data[at : at + 4]
    return version if _GQUIC_VERSION.fullmatch(version) else None


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client Initial of a version with known keys, or a gQUIC client packet;
    over TCP, Facebook's Zero protocol (gQUIC's handshake, "1QTV" first)."""
    if transport == "tcp":
        if data.startswith(FBZERO_MAGIC) and direction == 0:
            return Verdict.YES
        return Verdict.MORE if FBZERO_MAGIC.startswith(data) else Verdict.NO
    if direction != 0 or len(data) < 7:
        return Verdict.NO
    if _gquic_version(data) is not None and (port_hint or b"CHLO" in data):
        return Verdict.YES
    version = int.from_bytes(data[1:5], "big")
    ok = (
        initial_salt(version) is not None
        and is_initial(data[0], version)
        and data[5] <= 20
        and len(data) >= MIN_CLIENT_INITIAL
    )
    return Verdict.YES if ok else Verdict.NO


class QuicParser(Parser):
    name = "quic"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._dcid: bytes | None = None  # of the first Initial: it keys them all
        self._crypto: dict[int, bytes] = {}
        self._crypto_bytes = 0
        self._datagrams = 0

    def feed(self, direction: int, data: bytes) -> None:
        if direction != 0:
            return
        self._datagrams += 1
        if self._datagrams > MAX_DATAGRAMS:
            self.done = True
            return
        if self.transport == "tcp":
            self._on_chlo(data)  # Zero: the hello is in the first bytes
            return
        gquic = _gquic_version(data)
        if gquic is not None:
            self.sink.add("fpc.quic.version", gquic.decode("ascii"))
            self._on_chlo(data)
            return
        pos = 0
        while pos < len(data) and data[pos] & 0x80 and not self.done:
            pos = self._on_long_packet(data, pos)

    def _on_long_packet(self, data: bytes, pos: int) -> int:
        pkt = read_long_header(data, pos)
        self.sink.add("fpc.quic.version", version_name(pkt.version))
        if not is_initial(pkt.first, pkt.version):
            return pkt.end
        if self._dcid is None:
            self._dcid = pkt.dcid
        plain = decrypt_initial(data, pkt, self._dcid)
        for offset, chunk in crypto_frames(plain):
            self._add_crypto(offset, chunk)
        self._try_hello()
        return pkt.end

    def _add_crypto(self, offset: int, chunk: bytes) -> None:
        if offset + len(chunk) > MAX_CRYPTO_BYTES:
            raise ParseError(f"quic crypto data past {MAX_CRYPTO_BYTES} bytes")
        if offset not in self._crypto or len(self._crypto[offset]) < len(chunk):
            self._crypto_bytes += len(chunk)
            self._crypto[offset] = chunk

    def _try_hello(self) -> None:
        stream = _contiguous(self._crypto)
        if len(stream) < 4:
            return
        if stream[0] != HS_CLIENT_HELLO:
            raise ParseError(f"quic crypto stream starts with message {stream[0]}")
        length = int.from_bytes(stream[1:4], "big")
        if len(stream) < 4 + length:
            return
        hello = read_client_hello(stream[4 : 4 + length])
        add_client_hello(self.sink, hello, "q")
        self.done = True

    def _on_chlo(self, data: bytes) -> None:
        # TODO: a CHLO split over two datagrams or TCP segments is not joined;
        # only the tags in the first piece are read.
        start = data.find(b"CHLO")
        if start < 0:
            return
        for tag, value in _chlo_tags(Cursor(data, start + 4)):
            field = _CHLO_TAGS.get(tag)
            if field is not None and value:
                text = value.decode("ascii", "backslashreplace")
                self.sink.add(field, text.lower() if tag == b"SNI\x00" else text)
        self.done = True


def _contiguous(pieces: dict[int, bytes]) -> bytes:
    """The bytes from offset 0 up to the first hole."""
    out = bytearray()
    for offset in sorted(pieces):
        if offset > len(out):
            break
        out += pieces[offset][len(out) - offset :]
    return bytes(out)


def _chlo_tags(c: Cursor) -> list[tuple[bytes, bytes]]:
    """(tag, value) pairs of a gQUIC handshake message after its 'CHLO'."""
    count = c.u16le("gquic chlo tag count")
    if count > MAX_CHLO_TAGS:
        raise ParseError(f"gquic chlo with {count} tags (max {MAX_CHLO_TAGS})")
    c.skip(2, "gquic chlo padding")
    entries = [(c.take(4, "gquic tag"), c.u32le("gquic tag end")) for _ in range(count)]
    values = c.pos
    out, prev = [], 0
    for tag, end in entries:
        if end < prev:
            raise ParseError(f"gquic chlo tag {tag!r} ends before the previous one")
        out.append((tag, Cursor(c.buf, values + prev).take(end - prev, "gquic value")))
        prev = end
    return out


register(
    ParserSpec(
        name="quic",
        transports=frozenset({"udp", "tcp"}),
        ports=frozenset({443, 80, 8443}),
        classify=classify,
        create=QuicParser,
    )
)
