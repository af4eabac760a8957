"""Telnet recognition (TCP 23): a session opening with option negotiation.

In: the first bytes of each direction, through the classifier. Out: the
name `telnet` in the session's protocols; no fields (logins are typed one
character at a time and echoed, and fpc keeps no keystrokes).

Layout (RFC 854, RFC 855)::

    negotiation  IAC(0xFF) command(WILL 0xFB | WONT 0xFC | DO 0xFD | DONT 0xFE)
                 option(8)
"""

from __future__ import annotations

from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

IAC = 0xFF
WILL, DONT = 0xFB, 0xFE
NEGOTIATIONS_OFF_PORT = 2  # in a row at the start, off port 23


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """Option negotiations from the start: one on port 23, two elsewhere."""
    if data[:1] != b"\xff":
        return Verdict.MORE if not data else Verdict.NO
    need = 1 if port_hint else NEGOTIATIONS_OFF_PORT
    for i in range(need):
        chunk = data[3 * i : 3 * i + 3]
        if len(chunk) < 3:
            return Verdict.MORE if _negotiation_prefix(chunk) else Verdict.NO
        if not _negotiation_prefix(chunk):
            return Verdict.NO
    return Verdict.YES


def _negotiation_prefix(chunk: bytes) -> bool:
    if not chunk:
        return True
    return chunk[0] == IAC and (len(chunk) < 2 or WILL <= chunk[1] <= DONT)


class TelnetParser(Parser):
    name = "telnet"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self.done = True  # the name is all fpc takes

    def feed(self, direction: int, data: bytes) -> None:
        return


register(
    ParserSpec(
        name="telnet",
        transports=frozenset({"tcp"}),
        ports=frozenset({23}),
        classify=classify,
        create=TelnetParser,
    )
)
