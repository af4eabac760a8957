"""MySQL parser: server version from the greeting, user from the login.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
server version (`fpc.mysql.version`) and the login user (`fpc.mysql.user`).
A client that asks for TLS (SSLRequest) hands the session to TLS.

Layout (MySQL client/server protocol, protocol version 10)::

    packet     length(24 le) sequence(8) payload
    greeting   10(8) server_version NUL thread_id(32) ...        (server, seq 0)
    response   capabilities(32 le) max_packet(32) charset(8) reserved(23B)
               username NUL ...                                   (client, seq 1)
    SSLRequest the same first 32 bytes, capabilities with CLIENT_SSL, no more
"""

from __future__ import annotations

from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

PROTOCOL_V10 = 10
CLIENT_PROTOCOL_41, CLIENT_SSL = 0x0200, 0x0800
SSL_REQUEST_LEN = 32
MAX_PACKET = 64 * 1024  # greeting or login packet longer than this is refused
MAX_NAME = 256


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A server greeting: packet 0 holding protocol 10 and a version string."""
    if direction != 1:
        return Verdict.MORE if port_hint and direction == 0 else Verdict.NO
    if len(data) < 6:
        return Verdict.MORE
    size = int.from_bytes(data[:3], "little")
    if data[3] != 0 or data[4] != PROTOCOL_V10 or not 20 < size < MAX_PACKET:
        return Verdict.NO
    end = data.find(b"\x00", 5, 5 + 64)
    version = data[5:end]
    ok = end > 5 and version[:1].isdigit() and version.isascii()
    return Verdict.YES if ok else (Verdict.MORE if end < 0 else Verdict.NO)


class MysqlParser(Parser):
    name = "mysql"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._seen = [False, False]

    def feed(self, direction: int, data: bytes) -> None:
        if self._seen[direction]:
            return
        buf = self._bufs[direction]
        buf.add(data)
        if len(buf) < 4:
            return
        size = int.from_bytes(buf.peek(3), "little")
        if size > MAX_PACKET:
            raise ParseError(f"mysql packet of {size} bytes (max {MAX_PACKET})")
        if len(buf) < 4 + size:
            return
        self._seen[direction] = True
        payload = buf.take(4 + size)[4:]
        if direction == 1:
            self._on_greeting(payload)
        else:
            self._on_login(payload, buf.rest())
        self.done = self.done or all(self._seen)

    def end(self, direction: int) -> None:
        self._seen[direction] = True
        self.done = all(self._seen)

    def _on_greeting(self, payload: bytes) -> None:
        c = Cursor(payload)
        if c.u8("mysql protocol version") != PROTOCOL_V10:
            raise ParseError("mysql greeting is not protocol version 10")
        self.sink.add("fpc.mysql.version", _cstring(c, "mysql server version"))

    def _on_login(self, payload: bytes, rest: bytes) -> None:
        c = Cursor(payload)
        caps = c.u16le("mysql capabilities")
        if not caps & CLIENT_PROTOCOL_41:
            # TODO: pre-4.1 logins (16-bit capabilities, 3-byte max packet)
            # are not read; such sessions get no user.
            return
        c.skip(30, "mysql login header")
        if caps & CLIENT_SSL and len(payload) == SSL_REQUEST_LEN:
            self.handoff = (rest, self._bufs[1].rest())  # TLS follows the request
            self.done = True
            return
        user = _cstring(c, "mysql user name")
        if user:
            self.sink.add("fpc.mysql.user", user)


def _cstring(c: Cursor, what: str) -> str:
    end = c.buf.find(b"\x00", c.pos, min(c.end, c.pos + MAX_NAME))
    if end < 0:
        raise ParseError(f"{what} has no NUL within {MAX_NAME} bytes")
    return c.take(end - c.pos + 1, what)[:-1].decode("utf-8", "backslashreplace")


register(
    ParserSpec(
        name="mysql",
        transports=frozenset({"tcp"}),
        ports=frozenset({3306}),
        classify=classify,
        create=MysqlParser,
    )
)
