"""DTLS parser (UDP): the ClientHello and the server's certificates.

In: the datagrams of a session from `fpc.appl.state`. Out: SNI, offered
ALPN and JA4 ('d') of the ClientHello (`fpc.appl.tls_hello`) and the fields
of the server's certificates (`fpc.appl.tls.add_certificates`). Handshake
messages may be cut into fragments and sent in several records; they are put
together by message sequence number. Epoch 0 only: what follows the
ChangeCipherSpec is encrypted.

Layout (RFC 6347 sections 4.1, 4.2.2 and 4.2.1)::

    record     type(8) version(16) epoch(16) sequence(48) length(16) fragment
    handshake  msg_type(8) length(24) message_seq(16) fragment_offset(24)
               fragment_length(24) fragment
    ClientHello as TLS, with cookie<0..2^8-1> after the session id
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink
from fpc.appl.tls import add_certificates
from fpc.appl.tls_hello import add_client_hello, read_client_hello

REC_CHANGE_CIPHER_SPEC, REC_HANDSHAKE = 20, 22
HS_CLIENT_HELLO, HS_CERTIFICATE, HS_SERVER_HELLO_DONE = 1, 11, 14
VERSIONS = frozenset({0xFEFF, 0xFEFD, 0xFEFC, 0x0100})  # 1.0, 1.2, 1.3, pre-RFC
REC_HDR_LEN, HS_HDR_LEN = 13, 12
MAX_MESSAGE = 64 * 1024  # a handshake message longer than this is refused
MAX_DATAGRAMS = 32  # datagrams read per session


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A handshake record of epoch 0 holding a ClientHello, from the client."""
    ok = (
        direction == 0
        and len(data) >= REC_HDR_LEN + HS_HDR_LEN
        and data[0] == REC_HANDSHAKE
        and int.from_bytes(data[1:3], "big") in VERSIONS
        and data[3:5] == b"\x00\x00"
        and data[REC_HDR_LEN] == HS_CLIENT_HELLO
    )
    return Verdict.YES if ok else Verdict.NO


class _Message:
    """Fragments of one handshake message, by offset."""

    __slots__ = ("kind", "length", "pieces")

    def __init__(self, kind: int, length: int) -> None:
        self.kind = kind
        self.length = length
        self.pieces: dict[int, bytes] = {}

    def body(self) -> bytes | None:
        out = bytearray()
        for offset in sorted(self.pieces):
            if offset > len(out):
                return None
            out += self.pieces[offset][len(out) - offset :]
        return bytes(out) if len(out) >= self.length else None


class DtlsParser(Parser):
    name = "dtls"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages: list[dict[int, _Message]] = [{}, {}]
        self._finished = [False, False]
        self._datagrams = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._datagrams += 1
        if self._finished[direction] or self._datagrams > MAX_DATAGRAMS:
            self.done = self._datagrams > MAX_DATAGRAMS
            return
        c = Cursor(data)
        while c.remaining >= REC_HDR_LEN and not self._finished[direction]:
            ctype = c.u8("dtls record type")
            c.skip(2, "dtls version")
            epoch = c.u16("dtls epoch")
            c.skip(6, "dtls sequence")
            fragment = c.sub(c.u16("dtls record length"), "dtls record")
            if epoch or ctype == REC_CHANGE_CIPHER_SPEC:
                self._finish(direction)
            elif ctype == REC_HANDSHAKE:
                self._on_handshake(direction, fragment)

    def _finish(self, direction: int) -> None:
        self._finished[direction] = True
        self.done = all(self._finished)

    def _on_handshake(self, direction: int, c: Cursor) -> None:
        while c.remaining >= HS_HDR_LEN and not self._finished[direction]:
            kind = c.u8("dtls handshake type")
            length = c.u24("dtls handshake length")
            seq = c.u16("dtls message sequence")
            offset = c.u24("dtls fragment offset")
            piece = c.take(c.u24("dtls fragment length"), "dtls fragment")
            if length > MAX_MESSAGE or offset + len(piece) > length:
                raise ParseError(f"dtls handshake fragment past its {length} bytes")
            msg = self._messages[direction].setdefault(seq, _Message(kind, length))
            msg.pieces.setdefault(offset, piece)
            body = msg.body()
            if body is not None:
                del self._messages[direction][seq]
                self._on_message(direction, kind, body)

    def _on_message(self, direction: int, kind: int, body: bytes) -> None:
        if kind == HS_CLIENT_HELLO:
            add_client_hello(self.sink, read_client_hello(body, dtls=True), "d")
            self._finish(direction)  # a second hello only adds a cookie
        elif kind == HS_CERTIFICATE:
            add_certificates(self.sink, body)
            self._finish(direction)
        elif kind == HS_SERVER_HELLO_DONE:
            self._finish(direction)
        # TODO: the ServerHello's version and cipher are not reported for
        # DTLS; tls.version has no DTLS spelling in fpc yet.


register(
    ParserSpec(
        name="dtls",
        transports=frozenset({"udp"}),
        ports=frozenset({443, 4433, 5684}),
        classify=classify,
        create=DtlsParser,
    )
)
