"""The TLS ClientHello: its parts, and the SPI fields made from them.

In: the body of one ClientHello handshake message, from `fpc.appl.tls` (TLS
over TCP) or `fpc.appl.quic` (the CRYPTO frames of QUIC Initial packets).
Out: SNI, ALPN offers, JA3 and JA4 in `tls.client.*`.

Layout (RFC 8446 section 4.1.2)::

    ClientHello  version(16) random(32B) session_id<0..32> cipher_suites<2..2^16-2>
                 compression<1..2^8-1> [extensions<0..2^16-1>]
    extension    type(16) data<0..2^16-1>
    server_name  list<1..2^16-1> of: name_type(8) host_name<1..2^16-1>
    alpn         list<2..2^16-1> of: name<1..2^8-1>
    sig_algs     list<2..2^16-2> of: scheme(16)
    versions     list<2..254> of: version(16)                   (client side)
"""

from __future__ import annotations

import functools
import hashlib

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.ja4 import GREASE, HelloParts, ja4
from fpc.appl.sink import FieldSink

EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS, EXT_EC_POINT_FORMATS = 0, 10, 11
EXT_SIGNATURE_ALGORITHMS, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 13, 16, 43
MAX_ALPN_NAMES = 16  # ALPN offers kept per hello
_JA4_ONLY = frozenset({EXT_SIGNATURE_ALGORITHMS, EXT_ALPN, EXT_SUPPORTED_VERSIONS})


class ClientHello(HelloParts):
    """A parsed ClientHello: the JA4 parts plus what JA3 and the SNI need."""

    def __init__(self, legacy_version: int) -> None:
        super().__init__(legacy_version)
        self.server_names: list[str] = []
        self.groups: list[int] = []
        self.point_formats = b""


def read_extensions(c: Cursor) -> list[tuple[int, Cursor]]:
    """(type, data cursor) of each extension; none when the block is absent."""
    if c.remaining == 0:
        return []
    block = c.sub(c.u16("tls extensions length"), "tls extensions")
    exts = []
    while block.remaining:
        etype = block.u16("tls extension type")
        exts.append((etype, block.sub(block.u16("tls extension length"))))
    return exts


def read_client_hello(body: bytes, dtls: bool = False) -> ClientHello:
    """A ClientHello body; DTLS adds a cookie after the session id."""
    c = Cursor(body)
    hello = ClientHello(c.u16("tls client version"))
    c.skip(32, "tls client random")
    c.skip(c.u8("tls session id length"), "tls session id")
    if dtls:
        c.skip(c.u8("dtls cookie length"), "dtls cookie")
    hello.ciphers = c.u16_list(c.u16("tls cipher suites length"), "tls cipher suites")
    c.skip(c.u8("tls compression length"), "tls compression methods")
    for etype, data in read_extensions(c):
        hello.extensions.append(etype)
        _read_extension(hello, etype, data)
    return hello


def _read_extension(hello: ClientHello, etype: int, data: Cursor) -> None:
    if etype in _JA4_ONLY:
        try:
            _read_ja4_extension(hello, etype, data)
        except ParseError:
            pass  # a bad one costs JA4 its content, not the JA3 and SNI
    elif etype == EXT_SERVER_NAME:
        hello.server_names = server_names(data)
    elif etype == EXT_SUPPORTED_GROUPS:
        hello.groups = data.u16_list(data.u16("tls groups length"), "tls groups")
    elif etype == EXT_EC_POINT_FORMATS:
        hello.point_formats = data.take(data.u8("tls point formats length"))


def _read_ja4_extension(hello: ClientHello, etype: int, data: Cursor) -> None:
    if etype == EXT_SIGNATURE_ALGORITHMS:
        size = data.u16("tls signature algorithms length")
        hello.signature_algorithms = data.u16_list(size, "tls signature algorithms")
    elif etype == EXT_ALPN:
        hello.alpn = alpn_names(data)[:MAX_ALPN_NAMES]
    elif etype == EXT_SUPPORTED_VERSIONS:
        size = data.u8("tls supported versions length")
        hello.supported_versions = data.u16_list(size, "tls supported versions")


def add_client_hello(sink: FieldSink, hello: ClientHello, transport: str) -> None:
    """SNI, JA3 and JA4 (`transport` is JA4's 't' for TCP, 'q' for QUIC and
    TLS over UDP, 'd' for DTLS)."""
    for name in hello.server_names:
        sink.add("tls.client.server_name", name)
    for proto in hello.alpn:
        sink.add("fpc.tls.alpn_offered", _text(proto))
    if transport != "d":
        # TODO: no JA3 for DTLS hellos; JA3 is defined on TLS and Arkime, the
        # reference fpc is checked against, gives none for DTLS either.
        sink.add("tls.client.ja3", _ja3(hello.legacy_version, tuple(hello.ciphers),
                 tuple(hello.extensions), tuple(hello.groups),
                 hello.point_formats))  # fmt: skip
    sink.add("tls.client.ja4", _ja4(transport, hello.legacy_version,
             tuple(hello.ciphers), tuple(hello.extensions),
             tuple(hello.supported_versions), tuple(hello.signature_algorithms),
             tuple(hello.alpn)))  # fmt: skip


# The fingerprints depend on these lists alone, and the clients of one
# capture send far fewer kinds of hello than sessions: computed once per kind.
@functools.lru_cache(maxsize=4096)
def _ja3(
    version: int,
    ciphers: tuple[int, ...],
    extensions: tuple[int, ...],
    groups: tuple[int, ...],
    point_formats: bytes,
) -> str:
    hello = ClientHello(version)
    hello.ciphers, hello.extensions = list(ciphers), list(extensions)
    hello.groups, hello.point_formats = list(groups), point_formats
    return hashlib.md5(ja3_text(hello).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _ja4(
    transport: str,
    version: int,
    ciphers: tuple[int, ...],
    extensions: tuple[int, ...],
    versions: tuple[int, ...],
    signature_algorithms: tuple[int, ...],
    alpn: tuple[bytes, ...],
) -> str:
    parts = HelloParts(version, list(ciphers), list(extensions), list(versions),
                       list(signature_algorithms), list(alpn))  # fmt: skip
    return ja4(parts, transport)


def ja3_text(hello: ClientHello) -> str:
    return ",".join(
        (
            str(hello.legacy_version),
            dash(hello.ciphers),
            dash(hello.extensions),
            dash(hello.groups),
            "-".join(str(f) for f in hello.point_formats),
        )
    )


def dash(values: list[int]) -> str:
    return "-".join([str(v) for v in values if v not in GREASE])


def alpn_names(data: Cursor) -> list[bytes]:
    names = data.sub(data.u16("tls alpn list length"), "tls alpn list")
    out = []
    while names.remaining:
        out.append(names.take(names.u8("tls alpn name length"), "tls alpn name"))
    return out


def server_names(data: Cursor) -> list[str]:
    names = data.sub(data.u16("tls server name list length"), "tls server names")
    out = []
    while names.remaining:
        name_type = names.u8("tls server name type")
        value = names.take(names.u16("tls server name length"), "tls server name")
        if name_type == 0:  # host_name
            out.append(_text(value).lower())
    return out


def _text(value: bytes) -> str:
    return value.decode("ascii", "backslashreplace")
