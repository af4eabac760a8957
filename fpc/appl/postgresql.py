"""PostgreSQL parser: user, database and application of the startup message.

In: the in-order bytes of each direction from `fpc.appl.state`. Out:
`fpc.postgresql.user`, `fpc.postgresql.database` and
`fpc.postgresql.application_name` from the client's StartupMessage. After an
SSLRequest the server answers 'S' (TLS follows: the session is handed to
TLS) or 'N' (the startup message follows in clear).

Layout (PostgreSQL frontend/backend protocol 3.0, section "Message Formats")::

    SSLRequest      length(32)=8 code(32)=80877103
    StartupMessage  length(32) protocol(32)=0x00030000 *(name NUL value NUL) NUL
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
GSS_REQUEST = (8).to_bytes(4, "big") + (80877104).to_bytes(4, "big")
PROTOCOL_3 = 0x00030000
MAX_STARTUP = 10000  # the server refuses longer startup packets too
MAX_PARAMETERS = 64
_FIELDS = {
    b"user": "fpc.postgresql.user",
    b"database": "fpc.postgresql.database",
    b"application_name": "fpc.postgresql.application_name",
}


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """An SSLRequest, or a protocol 3.0 StartupMessage, from the client."""
    if direction != 0:
        return Verdict.NO
    if len(data) < 8:
        return Verdict.MORE if SSL_REQUEST.startswith(data[:8]) else Verdict.NO
    if data[:8] in (SSL_REQUEST, GSS_REQUEST):
        return Verdict.YES
    size = int.from_bytes(data[:4], "big")
    ok = 8 < size <= MAX_STARTUP and int.from_bytes(data[4:8], "big") == PROTOCOL_3
    return Verdict.YES if ok else Verdict.NO


class PostgresParser(Parser):
    name = "postgresql"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._client = b""
        self._ssl_asked = False

    def feed(self, direction: int, data: bytes) -> None:
        if direction == 1:
            self._on_server(data)
            return
        buf = self._client + data
        if buf[:8] == SSL_REQUEST and not self._ssl_asked:
            self._ssl_asked = True
            buf = buf[8:]
        elif buf[:8] == GSS_REQUEST:
            # TODO: a GSSAPI-encrypted session is not followed: its startup
            # message is sealed with Kerberos keys fpc does not have.
            self.done = True
            return
        if len(buf) > MAX_STARTUP:  # the server's answer to an SSLRequest is late
            raise ParseError(f"postgresql client sent {len(buf)} bytes unanswered")
        self._client = buf
        if len(buf) >= 8 and not self._ssl_asked:
            self._on_startup(buf)

    def _on_server(self, data: bytes) -> None:
        if not self._ssl_asked or not data:
            return
        self._ssl_asked = False
        if data[:1] == b"S":
            self.handoff = (self._client, data[1:])
            self.done = True
        elif self._client:
            self._on_startup(self._client)

    def _on_startup(self, buf: bytes) -> None:
        size = int.from_bytes(buf[:4], "big")
        if not 8 < size <= MAX_STARTUP:
            raise ParseError(f"postgresql startup message length {size}")
        if len(buf) < size:
            return
        c = Cursor(buf, 4, size)
        if c.u32("postgresql protocol") != PROTOCOL_3:
            raise ParseError("postgresql startup message is not protocol 3.0")
        for _ in range(MAX_PARAMETERS):
            name = _cstring(c, "postgresql parameter name")
            if not name:
                break
            value = _cstring(c, "postgresql parameter value")
            if name in _FIELDS and value:
                self.sink.add(_FIELDS[name], value.decode("utf-8", "backslashreplace"))
        self.done = True


def _cstring(c: Cursor, what: str) -> bytes:
    end = c.buf.find(b"\x00", c.pos, c.end)
    if end < 0:
        raise ParseError(f"{what} has no NUL before the end of the message")
    return c.take(end - c.pos + 1, what)[:-1]


register(
    ParserSpec(
        name="postgresql",
        transports=frozenset({"tcp"}),
        ports=frozenset({5432}),
        classify=classify,
        create=PostgresParser,
    )
)
