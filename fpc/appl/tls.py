"""TLS parser: record layer, the two hellos and the server's certificates.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
negotiated version (from the ServerHello's supported_versions extension when
present), SNI, cipher suite, JA3 and JA4 of the ClientHello, JA3S of the
ServerHello, and the server's certificates (TLS 1.2 and older send them in
clear; `fpc.appl.x509`). A message may span several records and TCP
segments. Once both sides are read, or a direction turns encrypted, the
parser is done. A client may open with an SSLv2-format ClientHello (SSLv3-era
clients did); it is skipped and the SSLv3/TLS records after it are read.

Layouts (RFC 8446 sections 4 and 5, RFC 5246 section 7.4, RFC 6101 E.1)::

    record       type(8) version(16) length(16) fragment
    handshake    msg_type(8) length(24) body
    ServerHello  version(16) random(32B) session_id<0..32> cipher_suite(16)
                 compression(8) [extensions<0..2^16-1>]
    Certificate  certificate_list<0..2^24-1> of: cert_data<1..2^24-1> (DER)
    SSLv2 hello  1(1) length(15) msg_type(8)=1 version(16) cipher_specs_len(16)
                 session_id_len(16) challenge_len(16) cipher_specs session_id
                 challenge
"""

from __future__ import annotations

import hashlib

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.ja4 import GREASE
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink
from fpc.appl.tls_hello import (
    EXT_ALPN,
    EXT_SUPPORTED_VERSIONS,
    add_client_hello,
    alpn_names,
    dash,
    read_client_hello,
    read_extensions,
)
from fpc.appl.tls_names import cipher_name, version_name
from fpc.appl.x509 import add_certificate

REC_CHANGE_CIPHER_SPEC, REC_ALERT, REC_HANDSHAKE, REC_APPLICATION_DATA = 20, 21, 22, 23
REC_HEARTBEAT = 24
REC_HDR_LEN = 5
MAX_RECORD_LEN = (1 << 14) + 2048  # RFC 5246 section 6.2.3 (ciphertext limit)
MAX_HANDSHAKE_LEN = 64 * 1024  # a handshake message longer than this is refused
MAX_TEXT_LINE = 512  # a plain reply line before TLS (RFC 5321: 512)
MAX_TEXT_BYTES = 2048  # plain text skipped before a direction's TLS records
MAX_CERTIFICATES = 8  # certificates of a chain decoded; the rest are skipped
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_CERTIFICATE, HS_SERVER_HELLO_DONE = 1, 2, 11, 14
SSL2_CLIENT_HELLO = 1
SSL2_VERSIONS = frozenset({0x0002, 0x0300, 0x0301, 0x0302, 0x0303})
TLS13 = 0x0304
# ServerHello.random of a HelloRetryRequest: SHA-256 of "HelloRetryRequest".
HRR_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values 0x0a0a, 0x1a1a, ..., 0xfafa."""
    return value in GREASE


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A handshake record (type 22, version 3.x) holding a hello, or SSLv2."""
    if data[:1] and data[0] & 0x80:
        return _classify_ssl2(data)
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
    return Verdict.YES if ok else Verdict.NO


def _classify_ssl2(data: bytes) -> Verdict:
    if len(data) < 5:
        return Verdict.MORE
    return Verdict.YES if _is_ssl2_hello(data) else Verdict.NO


def _is_ssl2_hello(data: bytes) -> bool:
    length = ((data[0] & 0x7F) << 8) | data[1]
    version = int.from_bytes(data[3:5], "big")
    return (
        len(data) >= 5
        and data[0] & 0x80 != 0
        and data[2] == SSL2_CLIENT_HELLO
        and version in SSL2_VERSIONS
        and length >= 9
    )


def find_hello(data: bytes) -> int:
    """Offset of a hello record that starts a line inside `data`, or -1.

    For a hello sent in the same TCP segment as the text command that asked
    for it (STARTTLS). Only a record right after a line feed counts, so TLS
    carried inside another framing (OpenVPN) is not taken for plain TLS.
    """
    pos = data.find(b"\n\x16\x03")
    while 0 <= pos:
        if classify("tcp", 0, data[pos + 1 : pos + 7], False) == Verdict.YES:
            return pos + 1
        pos = data.find(b"\n\x16\x03", pos + 1)
    return -1


class _Side:
    __slots__ = ("records", "handshake", "finished", "retry", "started")

    def __init__(self) -> None:
        self.records = b""  # bytes of an incomplete record
        self.handshake = b""  # bytes of an incomplete handshake message
        self.finished = False  # nothing more to read in this direction
        self.retry = False  # a HelloRetryRequest was sent (server side)
        self.started = False  # the first bytes were looked at (SSLv2 check)


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
        if not side.started:
            pos = _start_of_tls(buf)
            if pos < 0:
                side.records = buf  # wait for the whole SSLv2 hello or line
                return
            side.started = True
        while len(buf) - pos >= REC_HDR_LEN and not side.finished:
            ctype, length = _record_header(buf, pos, direction)
            if len(buf) - pos < REC_HDR_LEN + length:
                break
            fragment = buf[pos + REC_HDR_LEN : pos + REC_HDR_LEN + length]
            pos += REC_HDR_LEN + length
            self._on_record(side, ctype, fragment)
        side.records = buf[pos:] if not side.finished else b""
        self.done = all(s.finished for s in self._sides)

    def end(self, direction: int) -> None:
        self._sides[direction].finished = True
        self.done = all(s.finished for s in self._sides)

    def _on_record(self, side: _Side, ctype: int, fragment: bytes) -> None:
        if ctype == REC_HANDSHAKE:
            self._on_handshake(side, fragment)
        elif ctype == REC_APPLICATION_DATA:
            side.finished = True  # what follows is encrypted
        elif ctype == REC_CHANGE_CIPHER_SPEC and not side.retry:
            # Encrypted from here, except that the CCS sent after a
            # HelloRetryRequest is only for middleboxes (RFC 8446 D.4).
            side.finished = True

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
            self._on_message(side, msg_type, body)
        side.handshake = buf if not side.finished else b""

    def _on_message(self, side: _Side, msg_type: int, body: bytes) -> None:
        if msg_type == HS_CLIENT_HELLO:
            hello = read_client_hello(body)
            add_client_hello(self.sink, hello, "t" if self.transport == "tcp" else "q")
            side.finished = True
        elif msg_type == HS_SERVER_HELLO and body[2:34] == HRR_RANDOM:
            side.retry = True  # the real ServerHello comes after a new hello
        elif msg_type == HS_SERVER_HELLO:
            # TLS 1.3 encrypts the rest; before it the certificates follow.
            side.finished = self._on_server_hello(body) >= TLS13
        elif msg_type == HS_CERTIFICATE:
            add_certificates(self.sink, body)
            side.finished = True
        elif msg_type == HS_SERVER_HELLO_DONE:
            side.finished = True

    def _on_server_hello(self, body: bytes) -> int:
        """Adds the ServerHello's fields; returns the version it selected."""
        c = Cursor(body)
        version = c.u16("tls server version")
        c.skip(32, "tls server random")
        legacy = not (0x7F00 <= version < 0x7F16)  # drafts before 22: no such fields
        if legacy:
            c.skip(c.u8("tls session id length"), "tls session id")
        cipher = c.u16("tls cipher suite")
        if legacy:
            c.skip(1, "tls compression method")
        exts = read_extensions(c)
        selected = version
        for etype, data in exts:
            if etype == EXT_SUPPORTED_VERSIONS and data.remaining == 2:
                selected = data.u16()
            elif etype == EXT_ALPN:
                for proto in alpn_names(data):
                    self.sink.add("tls.next_protocol", _text(proto).lower())
                    if proto == b"h2" and "http2" not in self.extra_protocols:
                        self.extra_protocols.append("http2")
        name, protocol = version_name(selected)
        self.sink.add("tls.version", name)
        self.sink.add("tls.version_protocol", protocol)
        self.sink.add("tls.cipher", cipher_name(cipher))
        ja3s = f"{version},{cipher},{dash([t for t, _ in exts])}"
        self.sink.add("tls.server.ja3s", hashlib.md5(ja3s.encode()).hexdigest())
        return TLS13 if 0x7F00 <= selected < 0x7F00 + 256 else selected


def add_certificates(sink: FieldSink, body: bytes) -> None:
    """The fields of each certificate of a Certificate message (TLS <= 1.2)."""
    c = Cursor(body)
    chain = c.sub(c.u24("tls certificate list length"), "tls certificate list")
    for _ in range(MAX_CERTIFICATES):
        if not chain.remaining:
            break
        der = chain.take(chain.u24("tls certificate length"), "tls certificate")
        add_certificate(sink, der)


def _record_header(buf: bytes, pos: int, direction: int) -> tuple[int, int]:
    ctype, major = buf[pos], buf[pos + 1]
    length = (buf[pos + 3] << 8) | buf[pos + 4]
    if not REC_CHANGE_CIPHER_SPEC <= ctype <= REC_HEARTBEAT or major != 3:
        raise ParseError(
            f"tls record header {buf[pos : pos + 5].hex()} at stream "
            f"offset {pos} (direction {direction}) is not TLS"
        )
    if length > MAX_RECORD_LEN:
        raise ParseError(f"tls record length {length} over {MAX_RECORD_LEN}")
    return ctype, length


def _start_of_tls(buf: bytes) -> int:
    """Offset of the first TLS byte of a direction; -1 while undecided.

    Text lines first are skipped: after a STARTTLS the session is handed to
    TLS at the command, and the peer's plain reply ("220 go ahead") may come
    next in capture order. An SSLv2-format ClientHello is skipped too.
    """
    pos = 0
    while buf[pos : pos + 1].isalnum():  # a reply line, not a TLS record
        eol = buf.find(b"\n", pos, pos + MAX_TEXT_LINE)
        if eol < 0:
            if len(buf) - pos >= MAX_TEXT_LINE or pos >= MAX_TEXT_BYTES:
                raise ParseError(f"tls stream starts with text {buf[:16]!r}")
            return -1
        pos = eol + 1
        if pos > MAX_TEXT_BYTES:
            raise ParseError(f"tls stream starts with text {buf[:16]!r}")
    skip = _ssl2_hello_length(buf[pos:])
    return -1 if skip < 0 else pos + skip


def _ssl2_hello_length(buf: bytes) -> int:
    """Length of an SSLv2-format ClientHello at the start of `buf`; 0 if the
    stream starts with a TLS record; -1 while the hello is incomplete."""
    # TODO: the SSLv2 hello's cipher specs are not read, so such a session has
    # no SNI, JA3 or JA4 (SSLv2 has no extensions; Arkime gives none either).
    if not buf or not buf[0] & 0x80:
        return 0 if buf else -1
    if len(buf) < 5:
        return -1
    if not _is_ssl2_hello(buf):
        raise ParseError(f"tls stream starts with {buf[:5].hex()}: not an SSLv2 hello")
    length = 2 + (((buf[0] & 0x7F) << 8) | buf[1])
    return length if len(buf) >= length else -1


def _text(value: bytes) -> str:
    return value.decode("ascii", "backslashreplace")


register(
    ParserSpec(
        name="tls",
        transports=frozenset({"tcp"}),
        ports=frozenset({443, 465, 636, 853, 993, 995, 8443}),
        classify=classify,
        create=TlsParser,
        late=True,
        find=find_hello,
    )
)
