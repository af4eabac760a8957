"""SOCKS 4/4a/5 parser: the proxy handshake, then a handoff to the tunnel.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
destination the client asked for (`fpc.socks.host`, `fpc.socks.port`) and
the user it named (`fpc.socks.user`: the v4 USERID or the v5 user name); once
the proxy grants the request, the session is classified again from the
first tunnelled byte, so HTTP or TLS inside the tunnel gets its fields too.

Layouts (SOCKS 4 and 4a protocol notes; RFC 1928, RFC 1929)::

    v4 request   VN=4 CD(8) DSTPORT(16) DSTIP(32) USERID NUL [HOST NUL if 0.0.0.x]
    v4 reply     VN=0 CD(8: 90 granted) DSTPORT(16) DSTIP(32)
    v5 greeting  VER=5 NMETHODS(8) METHODS(NMETHODS)      reply: VER=5 METHOD(8)
    v5 auth      VER=1 ULEN USER PLEN PASS (method 2)     reply: VER=1 STATUS(8)
    v5 request   VER=5 CMD RSV ATYP ADDR PORT(16)         reply: VER=5 REP RSV ATYP
                 ATYP 1: IPv4(32)  3: LEN(8) NAME  4: IPv6(128)     ADDR PORT
"""

from __future__ import annotations

import ipaddress

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_HANDSHAKE_BYTES = 1024  # a SOCKS handshake fits in far less
V4_GRANTED = 90
V5_USER_PASS = 2
V5_NO_METHOD = 0xFF


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A whole v4 request or v5 greeting, and nothing after it."""
    if len(data) < 2:
        return Verdict.MORE if data[:1] in (b"", b"\x04", b"\x05") else Verdict.NO
    if data[0] == 5:
        n = data[1]
        ok = 1 <= n <= 16 and len(data) == 2 + n and max(data[2:]) <= 0xFE
        return Verdict.YES if ok else Verdict.NO
    if data[0] == 4 and data[1] in (1, 2) and len(data) >= 9:
        try:
            used = _v4_request(data, None)
        except ParseError:
            return Verdict.NO
        return Verdict.YES if used == len(data) else Verdict.NO
    return Verdict.NO


def _v4_request(buf: bytes, sink: FieldSink | None) -> int:
    """Bytes used by a complete v4/4a request; 0 when it is not complete yet."""
    if len(buf) < 9 or buf.find(b"\x00", 8) < 0:
        return 0
    if buf[0] != 4 or buf[1] not in (1, 2):
        raise ParseError(f"socks4 request starts with {buf[:2].hex()}")
    end = buf.index(b"\x00", 8) + 1
    host = str(ipaddress.IPv4Address(buf[4:8]))
    if buf[4:7] == b"\x00\x00\x00" and buf[7]:  # 4a: the name follows
        name_end = buf.find(b"\x00", end)
        if name_end < 0:
            return 0
        host, end = buf[end:name_end].decode("ascii", "backslashreplace"), name_end + 1
    if sink is not None:
        user = buf[8 : buf.index(b"\x00", 8)]
        if user:
            sink.add("fpc.socks.user", user.decode("utf-8", "backslashreplace"))
        sink.add("fpc.socks.host", host.lower())
        sink.add("fpc.socks.port", int.from_bytes(buf[2:4], "big"))
    return end


def _v5_address(c: Cursor) -> str:
    atyp = c.u8("socks5 address type")
    if atyp == 1:
        return str(ipaddress.IPv4Address(c.take(4, "socks5 ipv4")))
    if atyp == 4:
        return str(ipaddress.IPv6Address(c.take(16, "socks5 ipv6")))
    if atyp == 3:
        name = c.take(c.u8("socks5 name length"), "socks5 name")
        return name.decode("ascii", "backslashreplace").lower()
    raise ParseError(f"socks5 address type {atyp} is not 1, 3 or 4")


class SocksParser(Parser):
    name = "socks"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._client: int | None = None  # direction of the SOCKS client
        self._v4 = False
        self._bufs = [b"", b""]
        self._steps = [0, 0]  # messages read: [client, server]
        self._method: int | None = None

    def feed(self, direction: int, data: bytes) -> None:
        if self._client is None:
            if data[:1] not in (b"\x04", b"\x05"):
                return  # the proxy never speaks first; not part of the handshake
            self._client = direction
            self._v4 = data[0] == 4
        buf = self._bufs[direction] + data
        if len(buf) > MAX_HANDSHAKE_BYTES:
            raise ParseError(f"socks handshake over {MAX_HANDSHAKE_BYTES} bytes")
        self._bufs[direction] = buf
        while not self.done and (self._step(0) or self._step(1)):
            pass  # a client may send its request before the proxy's reply

    def end(self, direction: int) -> None:
        self.done = True

    def _step(self, role: int) -> bool:
        """Reads one message of `role` (0 client, 1 proxy); False if incomplete."""
        assert self._client is not None
        direction = self._client if role == 0 else 1 - self._client
        buf = self._bufs[direction]
        read = self._read_client if role == 0 else self._read_proxy
        used = read(buf, self._v4)
        if not used:
            return False
        self._bufs[direction] = buf[used:]
        self._steps[role] += 1
        return True

    def _read_client(self, buf: bytes, v4: bool) -> int:
        step = self._steps[0]
        if v4:
            return _v4_request(buf, self.sink) if step == 0 else 0
        c = Cursor(buf)
        try:
            if step == 0:
                c.skip(1, "socks5 version")
                c.skip(c.u8("socks5 method count"), "socks5 methods")
                return c.pos
            if step == 1 and self._method == V5_USER_PASS:
                c.skip(1, "socks5 auth version")
                user = c.take(c.u8("socks5 user length"), "socks5 user")
                c.skip(c.u8("socks5 password length"), "socks5 password")
                if user:
                    self.sink.add("fpc.socks.user", user.decode("utf-8", "replace"))
                return c.pos
            if step <= 2 and self._method is not None:
                c.skip(3)
                host = _v5_address(c)
                port = c.u16()
                self._steps[0] = 2  # no auth step when no auth was chosen
                self.sink.add("fpc.socks.host", host)
                self.sink.add("fpc.socks.port", port)
                return c.pos
        except ParseError:
            if len(buf) >= 262:  # longest v5 request: name of 255 bytes
                raise
        return 0

    def _read_proxy(self, buf: bytes, v4: bool) -> int:
        if v4:
            if len(buf) < 8:
                return 0
            self._finish(buf[1] == V4_GRANTED, buf[8:])
            return 8
        step = self._steps[1]
        if step == 0 and len(buf) >= 2:
            self._method = buf[1]
            if buf[0] != 5 or buf[1] == V5_NO_METHOD:
                self.done = True
            return 2
        if step == 1 and self._method == V5_USER_PASS and len(buf) >= 2:
            self.done = buf[1] != 0
            return 2
        c = Cursor(buf)
        try:
            c.skip(3)
            _v5_address(c)
            c.skip(2)
        except ParseError:
            return 0
        self._finish(buf[1] == 0, buf[c.pos :])
        return c.pos

    def _finish(self, granted: bool, rest: bytes) -> None:
        self.done = True
        if not granted:
            return
        assert self._client is not None
        client_rest = self._bufs[self._client] if self._steps[0] >= 1 else b""
        pair = [b"", b""]
        pair[self._client], pair[1 - self._client] = client_rest, rest
        self.handoff = (pair[0], pair[1])


register(
    ParserSpec(
        name="socks",
        transports=frozenset({"tcp"}),
        ports=frozenset({1080}),
        classify=classify,
        create=SocksParser,
    )
)
