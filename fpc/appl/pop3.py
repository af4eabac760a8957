"""POP3 parser (TCP 110): the user name, NTLM logins and STLS.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the user
of USER and APOP commands (`fpc.pop3.user`) and the NTLMSSP fields of an
AUTH NTLM exchange (`fpc.appl.ntlm`). An STLS the server accepts hands the
session to TLS. Mail bodies are never read: after MAX_LINES lines a side
stops.

Layout (RFC 1939, RFC 5034, RFC 2595)::

    command   keyword [SP argument] CR LF          (USER name, APOP name digest)
    reply     "+OK" | "-ERR" [SP text] CR LF;  "+" SP base64 during AUTH
"""

from __future__ import annotations

import re

from fpc.appl import ntlm
from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_LINE_BYTES = 4096
MAX_LINES = 256  # lines read per direction
_BASE64_LINE = re.compile(rb"(?:\+ )?([A-Za-z0-9+/]{16,}={0,2})")
_CLIENT_FIRST = (b"USER ", b"APOP ", b"AUTH ", b"CAPA", b"STLS")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """The server's +OK greeting naming POP (or on port 110), or a command."""
    head = data[:4].upper()
    if direction == 1 and not b"+OK".startswith(head[:3]):
        return Verdict.NO
    if direction == 0 and not (
        port_hint
        and any(w.startswith(head) or head.startswith(w) for w in _CLIENT_FIRST)
    ):
        return Verdict.NO
    eol = data.find(b"\n")
    if eol < 0:
        return Verdict.MORE if len(data) < MAX_LINE_BYTES else Verdict.NO
    line = data[:eol].upper()
    if direction == 1 and line.startswith(b"+OK"):
        return Verdict.YES if port_hint or b"POP" in line else Verdict.MORE
    if direction == 0 and port_hint and line.startswith(_CLIENT_FIRST):
        return Verdict.YES
    return Verdict.NO


class Pop3Parser(Parser):
    name = "pop3"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._lines = [0, 0]
        self._stls = False

    def feed(self, direction: int, data: bytes) -> None:
        if self._lines[direction] >= MAX_LINES:
            return  # this side is read far enough
        buf = self._bufs[direction] + data
        pos = 0
        while self.handoff is None and self._lines[direction] < MAX_LINES:
            if direction == 0 and self._stls:
                break  # TLS comes next from the client
            eol = buf.find(b"\n", pos)
            if eol < 0:
                break
            line, pos = buf[pos:eol].rstrip(b"\r"), eol + 1
            self._lines[direction] += 1
            if direction == 0:
                self._on_command(line)
            else:
                self._on_reply(line, buf[pos:])
        rest = buf[pos:]
        if len(rest) > MAX_LINE_BYTES and self.handoff is None and not self._stls:
            raise ParseError(f"pop3 line longer than {MAX_LINE_BYTES} bytes")
        self._bufs[direction] = rest if self.handoff is None else b""
        self.done = self.done or min(self._lines) >= MAX_LINES

    def _on_command(self, line: bytes) -> None:
        verb, _, arg = line.partition(b" ")
        verb = verb.upper()
        if verb in (b"USER", b"APOP") and arg:
            user = arg.split(b" ", 1)[0]
            self.sink.add("fpc.pop3.user", user.decode("utf-8", "backslashreplace"))
        elif verb == b"STLS":
            self._stls = True
        elif match := _BASE64_LINE.fullmatch(line):
            ntlm.scan_base64(self.sink, match.group(1))

    def _on_reply(self, line: bytes, rest: bytes) -> None:
        if self._stls:
            if line.startswith(b"+OK"):
                self.handoff = (self._bufs[0], rest)
                self.done = True
            elif line.startswith(b"-ERR"):
                self._stls = False
        elif match := _BASE64_LINE.fullmatch(line):
            ntlm.scan_base64(self.sink, match.group(1))


register(
    ParserSpec(
        name="pop3",
        transports=frozenset({"tcp"}),
        ports=frozenset({110}),
        classify=classify,
        create=Pop3Parser,
    )
)
