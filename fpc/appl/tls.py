"""TLS parser: record layer and the two hellos of the handshake.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
negotiated version (from the ServerHello's supported_versions extension when
present), SNI, cipher suite, JA3 of the ClientHello and JA3S of the
ServerHello. A hello may span several records and TCP segments. Once both
hellos are read, or a direction turns encrypted, the parser is done.

Layouts (RFC 8446 sections 4 and 5, RFC 5246 section 7.4)::

    record       type(8) version(16) length(16) fragment
    handshake    msg_type(8) length(24) body
    ClientHello  version(16) random(32B) session_id<0..32> cipher_suites<2..2^16-2>
                 compression<1..2^8-1> [extensions<0..2^16-1>]
    ServerHello  version(16) random(32B) session_id<0..32> cipher_suite(16)
                 compression(8) [extensions<0..2^16-1>]
    extension    type(16) data<0..2^16-1>
"""

from __future__ import annotations

import hashlib

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink
from fpc.appl.tls_names import cipher_name, version_name

REC_CHANGE_CIPHER_SPEC, REC_ALERT, REC_HANDSHAKE, REC_APPLICATION_DATA = 20, 21, 22, 23
REC_HEARTBEAT = 24
REC_HDR_LEN = 5
MAX_RECORD_LEN = (1 << 14) + 2048  # RFC 5246 section 6.2.3 (ciphertext limit)
MAX_HANDSHAKE_LEN = 64 * 1024  # a hello longer than this is refused
HS_CLIENT_HELLO, HS_SERVER_HELLO = 1, 2
EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS, EXT_EC_POINT_FORMATS = 0, 10, 11
EXT_ALPN = 16
# ServerHello.random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest".
HRR_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
EXT_SUPPORTED_VERSIONS = 43


GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))  # RFC 8701


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values 0x0a0a, 0x1a1a, ..., 0xfafa."""
    return value in GREASE


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A handshake record (type 22, version 3.x) holding a hello."""
    expect = bytes([REC_HANDSHAKE, 3])
    if len(data) < 6:
        return Verdict.MORE if expect.startswith(data[:2]) else Verdict.NO
    length = int.from_bytes(data[3:5], "big")
    ok = (
        data[:2] == expect
        and data[2] <= 4
        and 0 < length <= MAX_RECORD_LEN
        and data[5] in (HS_CLIENT_HELLO, HS_SERVER_HELLO)
    )
    # TODO: SSLv2-format ClientHellos (first byte with the high bit set) are
    # not recognized; such sessions get no TLS fields.
    return Verdict.YES if ok else Verdict.NO


class _Side:
    __slots__ = ("records", "handshake", "finished", "retry")

    def __init__(self) -> None:
        self.records = b""  # bytes of an incomplete record
        self.handshake = b""  # bytes of an incomplete handshake message
        self.finished = False  # nothing more to read in this direction
        self.retry = False  # a HelloRetryRequest was sent (server side)


class TlsParser(Parser):
    name = "tls"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._sides = (_Side(), _Side())

    def feed(self, direction: int, data: bytes) -> None:
        side = self._sides[direction]
        if side.finished:
            return
        buf = side.records + data if side.records else data
        pos = 0
        while len(buf) - pos >= REC_HDR_LEN and not side.finished:
            ctype, major = buf[pos], buf[pos + 1]
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if not REC_CHANGE_CIPHER_SPEC <= ctype <= REC_HEARTBEAT or major != 3:
                raise ParseError(
                    f"tls record header {buf[pos : pos + 5].hex()} at stream "
                    f"offset {pos} (direction {direction}) is not TLS"
                )
            if length > MAX_RECORD_LEN:
                raise ParseError(f"tls record length {length} over {MAX_RECORD_LEN}")
            if len(buf) - pos < REC_HDR_LEN + length:
                break
            fragment = buf[pos + REC_HDR_LEN : pos + REC_HDR_LEN + length]
            pos += REC_HDR_LEN + length
            if ctype == REC_HANDSHAKE:
                self._on_handshake(side, fragment)
            elif ctype == REC_APPLICATION_DATA:
                side.finished = True  # what follows is encrypted
            elif ctype == REC_CHANGE_CIPHER_SPEC and not side.retry:
                # Encrypted from here, except that the CCS sent after a
                # HelloRetryRequest is only for middleboxes (RFC 8446 D.4).
                side.finished = True
        side.records = buf[pos:] if not side.finished else b""
        self.done = all(s.finished for s in self._sides)

    def end(self, direction: int) -> None:
        self._sides[direction].finished = True
        self.done = all(s.finished for s in self._sides)

    def _on_handshake(self, side: _Side, fragment: bytes) -> None:
        buf = side.handshake + fragment
        while len(buf) >= 4 and not side.finished:
            msg_type = buf[0]
            length = int.from_bytes(buf[1:4], "big")
            if length > MAX_HANDSHAKE_LEN:
                raise ParseError(
                    f"tls handshake message type {msg_type} claims {length} bytes "
                    f"(max {MAX_HANDSHAKE_LEN})"
                )
            if len(buf) < 4 + length:
                break
            body, buf = buf[4 : 4 + length], buf[4 + length :]
            if msg_type == HS_CLIENT_HELLO:
                self._on_client_hello(body)
                side.finished = True
            elif msg_type == HS_SERVER_HELLO and body[2:34] == HRR_RANDOM:
                side.retry = True  # the real ServerHello comes after a new hello
            elif msg_type == HS_SERVER_HELLO:
                self._on_server_hello(body)
                side.finished = True
        side.handshake = buf if not side.finished else b""

    def _on_client_hello(self, body: bytes) -> None:
        c = Cursor(body)
        version = c.u16("tls client version")
        c.skip(32, "tls client random")
        c.skip(c.u8("tls session id length"), "tls session id")
        ciphers = c.u16_list(c.u16("tls cipher suites length"), "tls cipher suites")
        c.skip(c.u8("tls compression length"), "tls compression methods")
        exts = _read_extensions(c)
        groups: list[int] = []
        formats = b""
        for etype, data in exts:
            if etype == EXT_SERVER_NAME:
                for name in _server_names(data):
                    self.sink.add("tls.client.server_name", name)
            elif etype == EXT_SUPPORTED_GROUPS:
                groups = data.u16_list(data.u16("tls groups length"), "tls groups")
            elif etype == EXT_EC_POINT_FORMATS:
                formats = data.take(data.u8("tls point formats length"))
        ja3 = ",".join(
            (
                str(version),
                _dash(ciphers),
                _dash([t for t, _ in exts]),
                _dash(groups),
                "-".join(str(f) for f in formats),
            )
        )
        self.sink.add("tls.client.ja3", hashlib.md5(ja3.encode()).hexdigest())

    def _on_alpn(self, data: Cursor) -> None:
        """The protocol the server picked (RFC 7301: exactly one name)."""
        for name in _alpn_names(data):
            self.sink.add("tls.next_protocol", name.lower())

    def _on_server_hello(self, body: bytes) -> None:
        c = Cursor(body)
        version = c.u16("tls server version")
        c.skip(32, "tls server random")
        legacy = not (0x7F00 <= version < 0x7F16)  # drafts before 22: no such fields
        if legacy:
            c.skip(c.u8("tls session id length"), "tls session id")
        cipher = c.u16("tls cipher suite")
        if legacy:
            c.skip(1, "tls compression method")
        exts = _read_extensions(c)
        selected = version
        for etype, data in exts:
            if etype == EXT_SUPPORTED_VERSIONS and data.remaining == 2:
                selected = data.u16()
            elif etype == EXT_ALPN:
                self._on_alpn(data)
        name, protocol = version_name(selected)
        self.sink.add("tls.version", name)
        self.sink.add("tls.version_protocol", protocol)
        self.sink.add("tls.cipher", cipher_name(cipher))
        ja3s = f"{version},{cipher},{_dash([t for t, _ in exts])}"
        self.sink.add("tls.server.ja3s", hashlib.md5(ja3s.encode()).hexdigest())


def _alpn_names(data: Cursor) -> list[str]:
    names = data.sub(data.u16("tls alpn list length"), "tls alpn list")
    out = []
    while names.remaining:
        name = names.take(names.u8("tls alpn name length"), "tls alpn name")
        out.append(name.decode("ascii", "backslashreplace"))
    return out


def _read_extensions(c: Cursor) -> list[tuple[int, Cursor]]:
    """(type, data cursor) of each extension; none when the block is absent."""
    if c.remaining == 0:
        return []
    block = c.sub(c.u16("tls extensions length"), "tls extensions")
    exts = []
    while block.remaining:
        etype = block.u16("tls extension type")
        exts.append((etype, block.sub(block.u16("tls extension length"))))
    return exts


def _server_names(data: Cursor) -> list[str]:
    names = data.sub(data.u16("tls server name list length"), "tls server names")
    out = []
    while names.remaining:
        name_type = names.u8("tls server name type")
        value = names.take(names.u16("tls server name length"), "tls server name")
        if name_type == 0:  # host_name
            out.append(value.decode("ascii", "backslashreplace").lower())
    return out


def _dash(values: list[int]) -> str:
    return "-".join([str(v) for v in values if v not in GREASE])


register(
    ParserSpec(
        name="tls",
        transports=frozenset({"tcp"}),
        ports=frozenset({443, 465, 636, 853, 993, 995, 8443}),
        classify=classify,
        create=TlsParser,
        late=True,
    )
)
