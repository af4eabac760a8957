"""NTP parser (UDP 123): version, mode, stratum and reference id.

In: the datagrams of a session from `fpc.appl.state`. Out: `fpc.ntp.version`,
`fpc.ntp.mode` (client, server, ...), `fpc.ntp.stratum` and
`fpc.ntp.reference_id` of each message, up to MAX_MESSAGES per session.

Layout (RFC 5905 section 7.3)::

    LI(2) VN(3) Mode(3) stratum(8) poll(8) precision(8)
    root delay(32) root dispersion(32) reference id(32)
    reference, origin, receive, transmit timestamps (64 each)   = 48 bytes
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

NTP_LEN = 48
MAX_MESSAGES = 32
MODES = (
    "reserved", "symmetric-active", "symmetric-passive", "client", "server",
    "broadcast", "control", "private",
)  # fmt: skip


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """On port 123 only: 48 bytes or more, version 1 to 4, a time mode."""
    ok = (
        port_hint
        and len(data) >= NTP_LEN
        and 1 <= (data[0] >> 3) & 7 <= 4
        and 1 <= data[0] & 7 <= 5
    )
    return Verdict.YES if ok else Verdict.NO


def reference_id(stratum: int, raw: bytes) -> str:
    """ASCII kiss code or source name at stratum 0-1; hex otherwise."""
    if stratum <= 1 and all(0x20 <= b < 0x7F for b in raw.rstrip(b"\x00")):
        return raw.rstrip(b"\x00").decode("ascii")
    return raw.hex()


class NtpParser(Parser):
    name = "ntp"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        c = Cursor(data)
        first = c.u8("ntp header")
        stratum = c.u8("ntp stratum")
        c.skip(10, "ntp poll/precision/root delay/dispersion")
        ref = c.take(4, "ntp reference id")
        c.skip(32, "ntp timestamps")
        self.sink.add("fpc.ntp.version", (first >> 3) & 7)
        self.sink.add("fpc.ntp.mode", MODES[first & 7])
        self.sink.add("fpc.ntp.stratum", stratum)
        self.sink.add("fpc.ntp.reference_id", reference_id(stratum, ref))


register(
    ParserSpec(
        name="ntp",
        transports=frozenset({"udp"}),
        ports=frozenset({123}),
        classify=classify,
        create=NtpParser,
    )
)
