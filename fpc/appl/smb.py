"""SMB parser (SMB1, SMB2/3 over TCP 445/139): NTLM logins.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the SMB
versions seen (`fpc.smb.version`: 1 or 2, SMB3 being a dialect of 2) and the
NTLMSSP fields of the session setup (`fpc.appl.ntlm`). Messages are framed
by their NetBIOS session header; after MAX_MESSAGES per direction (the login
is long over by then) the parser stops.

Layout (RFC 1002 section 4.3.1, MS-SMB section 2.2.3.1, MS-SMB2 2.2.1)::

    NBSS     type(8)=0 length(24) message        (type 0x85: keep-alive)
    SMB1     0xFF "SMB" command(8) ...
    SMB2     0xFE "SMB" structure_size(16)=64 ...
"""

from __future__ import annotations

from fpc.appl import ntlm
from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

NBSS_MESSAGE, NBSS_KEEPALIVE = 0x00, 0x85
SMB1, SMB2 = b"\xffSMB", b"\xfeSMB"
MAX_MESSAGE = 1 << 24  # the 24-bit NBSS length
MAX_MESSAGES = 32  # messages read per direction
MAX_SCANNED = 64 * 1024  # bytes of one message searched for NTLMSSP


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """An NBSS message holding an SMB1 or SMB2 header."""
    if len(data) < 8:
        return Verdict.MORE if not data or data[0] == NBSS_MESSAGE else Verdict.NO
    ok = data[0] == NBSS_MESSAGE and data[4:8] in (SMB1, SMB2)
    return Verdict.YES if ok else Verdict.NO


class SmbParser(Parser):
    name = "smb"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._messages = [0, 0]
        self._skip = [0, 0]  # bytes of a long message still to pass over

    def feed(self, direction: int, data: bytes) -> None:
        if self._messages[direction] >= MAX_MESSAGES:
            return
        if self._skip[direction]:
            step = min(self._skip[direction], len(data))
            self._skip[direction] -= step
            data = data[step:]
        buf = self._bufs[direction] + data
        pos = 0
        while len(buf) - pos >= 4 and self._messages[direction] < MAX_MESSAGES:
            kind = buf[pos]
            size = int.from_bytes(buf[pos + 1 : pos + 4], "big")
            if kind not in (NBSS_MESSAGE, NBSS_KEEPALIVE):
                raise ParseError(f"smb: NBSS type 0x{kind:02x} (direction {direction})")
            if len(buf) - pos < 4 + min(size, MAX_SCANNED):
                break
            self._on_message(buf[pos + 4 : pos + 4 + min(size, MAX_SCANNED)])
            self._messages[direction] += 1
            pos += 4 + size
        if pos > len(buf):  # a message longer than MAX_SCANNED: skip the rest
            self._bufs[direction] = b""
            self._skip[direction] = pos - len(buf)
        else:
            self._bufs[direction] = buf[pos:]
        self.done = min(self._messages) >= MAX_MESSAGES

    def _on_message(self, msg: bytes) -> None:
        if msg[:4] == SMB1:
            self.sink.add("fpc.smb.version", 1)
        elif msg[:4] == SMB2:
            self.sink.add("fpc.smb.version", 2)
        if ntlm.SIGNATURE in msg:
            ntlm.scan(self.sink, msg)


register(
    ParserSpec(
        name="smb",
        transports=frozenset({"tcp"}),
        ports=frozenset({445, 139}),
        classify=classify,
        create=SmbParser,
    )
)
