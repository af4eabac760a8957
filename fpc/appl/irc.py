"""IRC parser: the nicknames a client takes and the channels it joins.

In: the in-order bytes of each direction from `fpc.appl.state`. Out:
`fpc.irc.nick` and `fpc.irc.channel` from the client's NICK and JOIN
commands. A STARTTLS the server accepts (numeric 670) hands the session to
TLS. After MAX_LINES client lines the parser stops.

Layout (RFC 2812 section 2.3; IRCv3 STARTTLS)::

    message  [":" prefix SP] command *(SP param) [SP ":" trailing] CR LF
    NICK     "NICK" SP nickname
    JOIN     "JOIN" SP channel *("," channel) [SP keys]
"""

from __future__ import annotations

import re

from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_LINE_BYTES = 4096  # RFC 2812 allows 512; IRCv3 tags make lines longer
MAX_LINES = 256  # client lines read per session
MAX_CHANNELS = 16  # channels taken from one JOIN
_IRC_FIRST = re.compile(rb"NICK \S|CAP (?:LS|REQ)|USER \S+ \S+ \S+ :")
MAX_CLASSIFY_LINES = 3  # lines looked at before deciding
_RPL_STARTTLS = re.compile(rb"(?::\S+ )?670 ")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client's registration: NICK, CAP, or an IRC-style USER line.

    FTP and POP3 clients also open with USER or PASS, so those alone decide
    nothing: IRC's USER has a ':' realname, and NICK follows soon.
    """
    if direction != 0:
        return Verdict.NO
    # Lines past MAX_CLASSIFY_LINES stay in one piece: only their count matters.
    lines = data.split(b"\n", MAX_CLASSIFY_LINES)
    for line in lines[:-1][:MAX_CLASSIFY_LINES]:
        if _IRC_FIRST.match(line):
            return Verdict.YES
        if not line.startswith((b"PASS ", b"USER ")):
            return Verdict.NO
    if len(lines) > MAX_CLASSIFY_LINES:
        return Verdict.NO
    head = lines[-1][:5]
    partial = any(w.startswith(head) for w in (b"NICK ", b"USER ", b"PASS ", b"CAP "))
    return Verdict.MORE if partial or len(lines) > 1 else Verdict.NO


class IrcParser(Parser):
    name = "irc"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._lines = 0
        self._starttls = False

    def feed(self, direction: int, data: bytes) -> None:
        buf = self._bufs[direction] + data
        pos = 0
        while self.handoff is None and not self.done:
            if direction == 0 and self._starttls:
                break  # what the client sends next is TLS
            eol = buf.find(b"\n", pos)
            if eol < 0:
                break
            line, pos = buf[pos:eol].rstrip(b"\r"), eol + 1
            if direction == 0:
                self._on_client_line(line)
            elif self._starttls and _RPL_STARTTLS.match(line):
                self._start_tls(self._bufs[0], buf[pos:])
        rest = buf[pos:]
        if direction == 0 and self._starttls and rest[:1] == b"\x16":
            # The hello came with the 670 reply not seen (out of order or
            # before the capture started): TLS takes over anyway.
            self._start_tls(rest, self._bufs[1])
        if len(rest) > MAX_LINE_BYTES and self.handoff is None:
            raise ParseError(f"irc line longer than {MAX_LINE_BYTES} bytes")
        self._bufs[direction] = rest if self.handoff is None else b""

    def _start_tls(self, client_rest: bytes, server_rest: bytes) -> None:
        self.handoff = (client_rest, server_rest)
        self.done = True

    def _on_client_line(self, line: bytes) -> None:
        self._lines += 1
        self.done = self._lines >= MAX_LINES
        words = line.split(b" ")
        command = words[0].upper()
        if command == b"NICK" and len(words) > 1:
            self.sink.add("fpc.irc.nick", _text(words[1].lstrip(b":")))
        elif command == b"JOIN" and len(words) > 1:
            for channel in words[1].lstrip(b":").split(b",")[:MAX_CHANNELS]:
                if channel and channel != b"0":
                    self.sink.add("fpc.irc.channel", _text(channel))
        elif command == b"STARTTLS":
            self._starttls = True


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


register(
    ParserSpec(
        name="irc",
        transports=frozenset({"tcp"}),
        ports=frozenset({6667, 6697}),
        classify=classify,
        create=IrcParser,
    )
)
