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
from fpc.appl.buffer import ByteBuffer
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
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._messages = [0, 0]
        self._skip = [0, 0]  # bytes of a long message still to pass over

    def feed(self, direction: int, data: bytes) -> None:
        if self._messages[direction] >= MAX_MESSAGES:
            return
        if self._skip[direction]:
            step = min(self._skip[direction], len(data))
            self._skip[direction] -= step
            data = data[step:]
        buf = self._bufs[direction]
        buf.add(data)
        while len(buf) >= 4 and self._messages[direction] < MAX_MESSAGES:
            head = buf.peek(4)
            size = int.from_bytes(head[1:4], "big")
            if head[0] not in (NBSS_MESSAGE, NBSS_KEEPALIVE):
                raise ParseError(
                    f"smb: NBSS type 0x{head[0]:02x} (direction {direction})"
                )
            kept = min(size, MAX_SCANNED)
            if len(buf) < 4 + kept:
                break
            self._on_message(buf.take(4 + kept)[4:])
            self._messages[direction] += 1
            skip = size - kept  # a long message: only its start is searched
            if skip:
                held = min(skip, len(buf))
                buf.take(held)
                self._skip[direction] = skip - held
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
