"""IMAP parser (TCP 143): the login user, mailboxes, NTLM logins, STARTTLS.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
user of LOGIN (`fpc.imap.user`), the mailboxes SELECTed or EXAMINEd
(`fpc.imap.mailbox`), the NTLMSSP fields of AUTHENTICATE NTLM
(`fpc.appl.ntlm`), and the header fields of the messages the server sends in
FETCH responses (`email.*`, via `fpc.appl.mail_headers`). A STARTTLS the
server accepts hands the session to TLS. After MAX_LINES lines a side stops.

Layout (RFC 9051 sections 2.2, 6.2 and 6.3)::

    command       tag SP name [SP arguments] CR LF
    astring       atom | quoted "..." | literal {n} CR LF n bytes
    response      tag SP (OK | NO | BAD) text | "*" SP data | "+" SP base64
    fetch         "*" SP n SP "FETCH" SP "(" ... (BODY[HEADER...] | RFC822.HEADER |
                  BODY[] | RFC822) SP {size} CR LF  size bytes of the message ...
"""

from __future__ import annotations

import re

from fpc.appl import ntlm
from fpc.appl.cursor import ParseError
from fpc.appl.mail_headers import add_headers
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_LINE_BYTES = 8192
MAX_LINES = 512  # lines read per direction
MAX_HEADER_BYTES = 16 * 1024  # of a fetched message, read for its header fields
MAX_MESSAGES = 64  # fetched messages whose headers are read
_COMMAND = re.compile(rb'([!#-\'*-Z^-z|~]+) +([A-Za-z]+)(?: +(?:"([^"]*)"|(\S+)))?')
_BASE64_LINE = re.compile(rb"(?:\+ )?([A-Za-z0-9+/]{16,}={0,2})")
# A FETCH response whose literal is a whole message or its header.
_FETCH_MESSAGE = re.compile(
    rb"\* \d+ FETCH .*(?:BODY(?:\.PEEK)?\[(?:HEADER[^\]]*)?\]|RFC822(?:\.HEADER)?)"
    rb"(?:<\d+>)? \{(\d{1,9})\}$",
    re.IGNORECASE,
)
_LITERAL = re.compile(rb"\{(\d{1,9})\}$")
_CLIENT_FIRST = re.compile(rb"\S+ +(?:CAPABILITY|LOGIN|AUTHENTICATE|STARTTLS|ID)\b",
                           re.IGNORECASE)  # fmt: skip


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """The server's "* OK" greeting naming IMAP (or on port 143), or a command."""
    if direction == 1 and not b"* ".startswith(data[:2]):
        return Verdict.NO
    if direction == 0 and not (port_hint and data[:1].isalnum()):
        return Verdict.NO
    eol = data.find(b"\n")
    if eol < 0:
        return Verdict.MORE if len(data) < MAX_LINE_BYTES else Verdict.NO
    line = data[:eol]
    if direction == 1 and line.startswith((b"* OK", b"* PREAUTH")):
        return Verdict.YES if port_hint or b"IMAP" in line.upper() else Verdict.MORE
    if direction == 0 and port_hint and _CLIENT_FIRST.match(line):
        return Verdict.YES
    return Verdict.NO


class ImapParser(Parser):
    name = "imap"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._lines = [0, 0]
        self._starttls: bytes | None = None  # tag of a pending STARTTLS
        self._literal = 0  # bytes of a server literal still to come
        self._header: bytearray | None = None  # a fetched message's head so far
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        if self._lines[direction] >= MAX_LINES:
            return  # this side is read far enough
        buf = self._bufs[direction] + data
        pos = 0
        while self.handoff is None and self._lines[direction] < MAX_LINES:
            if direction == 0 and self._starttls is not None:
                break  # TLS comes next from the client
            if direction == 1 and self._literal:
                if pos == len(buf):
                    break  # the rest of the literal is still to come
                pos = self._read_literal(buf, pos)
                continue
            eol = buf.find(b"\n", pos)
            if eol < 0:
                break
            line, pos = buf[pos:eol].rstrip(b"\r"), eol + 1
            self._lines[direction] += 1
            if direction == 0:
                self._on_command(line)
            else:
                self._on_response(line, buf[pos:])
        rest = buf[pos:]
        waiting = self._starttls is not None and direction == 0
        if len(rest) > MAX_LINE_BYTES and self.handoff is None and not waiting:
            raise ParseError(f"imap line longer than {MAX_LINE_BYTES} bytes")
        self._bufs[direction] = rest if self.handoff is None else b""
        self.done = self.done or min(self._lines) >= MAX_LINES

    def _on_command(self, line: bytes) -> None:
        if base64 := _BASE64_LINE.fullmatch(line):
            ntlm.scan_base64(self.sink, base64.group(1))
            return
        match = _COMMAND.match(line)
        if match is None:
            return
        name = match.group(2).upper()
        arg = match.group(3) if match.group(3) is not None else match.group(4)
        if name == b"LOGIN" and arg:
            self.sink.add("fpc.imap.user", _text(arg))
        elif name in (b"SELECT", b"EXAMINE") and arg:
            self.sink.add("fpc.imap.mailbox", _text(arg))
        elif name == b"STARTTLS":
            self._starttls = match.group(1)

    def _on_response(self, line: bytes, rest: bytes) -> None:
        tag = self._starttls
        if tag is not None and line.startswith(tag + b" "):
            if line[len(tag) + 1 :].upper().startswith(b"OK"):
                self.handoff = (self._bufs[0], rest)
                self.done = True
            else:
                self._starttls = None
        elif line.startswith(b"+ ") and (base64 := _BASE64_LINE.fullmatch(line)):
            ntlm.scan_base64(self.sink, base64.group(1))
        elif literal := _LITERAL.search(line):
            self._literal = int(literal.group(1))
            message = _FETCH_MESSAGE.match(line) and self._messages < MAX_MESSAGES
            self._header = bytearray() if message else None

    def _read_literal(self, buf: bytes, pos: int) -> int:
        """Passes over a literal; a fetched message's head goes to the mail
        header reader once its blank line (or the literal's end) is here."""
        end = pos + min(self._literal, len(buf) - pos)
        self._literal -= end - pos
        if self._header is not None:
            room = MAX_HEADER_BYTES - len(self._header)
            self._header += buf[pos : pos + max(room, 0)]
            blank = self._header.find(b"\r\n\r\n")
            if blank >= 0 or not self._literal or room <= 0:
                head = self._header if blank < 0 else self._header[: blank + 2]
                add_headers(self.sink, bytes(head))
                self._messages += 1
                self._header = None
        return end


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


register(
    ParserSpec(
        name="imap",
        transports=frozenset({"tcp"}),
        ports=frozenset({143}),
        classify=classify,
        create=ImapParser,
    )
)
