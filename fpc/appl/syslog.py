"""Syslog parser (UDP 514): facility, severity and host of each message.

In: the datagrams of a session from `fpc.appl.state`. Out:
`fpc.syslog.facility` and `fpc.syslog.severity` (names, from PRI) and
`fpc.syslog.hostname` of the BSD (RFC 3164) and the RFC 5424 formats. After
MAX_MESSAGES datagrams the parser stops.

TODO: syslog over TCP (RFC 6587 octet counting or LF framing) is not read;
such sessions are not named syslog.

Layout (RFC 5424 section 6; RFC 3164 section 4.1)::

    PRI       "<" facility * 8 + severity (1..3 digits, at most 191) ">"
    RFC 5424  PRI version(digit) SP TIMESTAMP SP HOSTNAME SP APP-NAME SP ...
              ("-" for a value that is absent)
    RFC 3164  PRI TIMESTAMP("Mmm dd hh:mm:ss") SP HOSTNAME SP TAG MSG
"""

from __future__ import annotations

import re

from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

FACILITIES = ("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
              "uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
              *(f"local{i}" for i in range(8)))  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
MAX_MESSAGES = 64
_PRI = re.compile(rb"<(\d{1,3})>")
_RFC5424 = re.compile(rb"[1-9]\d{0,2} \S+ (\S+) ")
_RFC3164 = re.compile(
    rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d"
    rb" (\S+) "
)
NIL = b"-"


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A PRI; off the syslog port also a header in one of the two formats."""
    if data[:1] != b"<":
        return Verdict.NO
    match = _PRI.match(data)
    if match is None or int(match.group(1)) > 191:
        return Verdict.NO
    if port_hint or _header_host(data, match.end()) is not None:
        return Verdict.YES
    return Verdict.NO


def _header_host(data: bytes, at: int) -> bytes | None:
    """HOSTNAME of an RFC 5424 or BSD header starting at `at`, else None."""
    header = _RFC5424.match(data, at) or _RFC3164.match(data, at)
    return header.group(1) if header is not None else None


class SyslogParser(Parser):
    name = "syslog"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        match = _PRI.match(data)
        if match is None or int(match.group(1)) > 191:
            raise ParseError(f"syslog message without a PRI: {data[:8]!r}")
        facility, severity = divmod(int(match.group(1)), 8)
        self.sink.add("fpc.syslog.facility", FACILITIES[facility])
        self.sink.add("fpc.syslog.severity", SEVERITIES[severity])
        host = _header_host(data, match.end())
        if host and host != NIL:
            self.sink.add("fpc.syslog.hostname", host.decode("utf-8", "replace"))


register(
    ParserSpec(
        name="syslog",
        transports=frozenset({"udp"}),
        ports=frozenset({514}),
        classify=classify,
        create=SyslogParser,
    )
)
