"""RDP parser (TCP 3389): the connection request cookie and the security
protocol negotiation; TLS after it is handed to the TLS parser.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
mstshash cookie (`fpc.rdp.cookie`, a user name the client offers), the
security protocols the client asks for and the one the server picks
(`fpc.rdp.requested_protocols`, `fpc.rdp.selected_protocol`). When the
server picks TLS or CredSSP, what follows is TLS: the session is classified
again.

Layout (MS-RDPBCGR 2.2.1.1 and 2.2.1.2; TPKT RFC 1006, X.224 ISO 8073)::

    TPKT      version(8)=3 reserved(8) length(16)
    X.224 CR  length(8) code(8)=0xE0 dst_ref(16) src_ref(16) class(8)
              ["Cookie: mstshash=" name CR LF | routing token CR LF]
              [RDP_NEG_REQ: type(8)=1 flags(8) length(16le)=8 protocols(32le)]
    X.224 CC  length(8) code(8)=0xD0 dst_ref(16) src_ref(16) class(8)
              [RDP_NEG_RSP: type(8)=2 flags(8) length(16le)=8 selected(32le)
               | RDP_NEG_FAILURE: type(8)=3 flags(8) length(16le) code(32le)]
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

TPKT_VERSION = 3
X224_CR, X224_CC = 0xE0, 0xD0
NEG_REQ, NEG_RSP, NEG_FAILURE = 1, 2, 3
COOKIE = b"Cookie: mstshash="
PROTOCOLS = ((1, "tls"), (2, "hybrid"), (4, "rdstls"), (8, "hybrid_ex"))
_TLS_PROTOCOLS = 1 | 2 | 8  # TLS, CredSSP, CredSSP with early auth: TLS follows
MAX_TPKT = 4096  # connection request and confirm are short


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A TPKT holding an X.224 connection request from the client."""
    if direction != 0:
        return Verdict.NO
    if len(data) < 6:
        return Verdict.MORE if data[:1] in (b"", b"\x03") else Verdict.NO
    size = int.from_bytes(data[2:4], "big")
    if data[0] != TPKT_VERSION or not 11 <= size <= MAX_TPKT or data[5] != X224_CR:
        return Verdict.NO
    if len(data) < size:
        return Verdict.MORE
    # Other ISO transports (S7comm on 102) send TSAP parameters (0xC0..0xC2)
    # here; RDP sends a cookie, a routing token or a negotiation request.
    rest = data[11:size]
    rdp_like = rest.startswith(b"Cookie: ") or rest[:1] == bytes([NEG_REQ]) or not rest
    return Verdict.YES if port_hint or rdp_like else Verdict.NO


def protocol_names(bits: int) -> list[str]:
    names = [name for bit, name in PROTOCOLS if bits & bit]
    return names or ["rdp"]  # 0: standard RDP security


class RdpParser(Parser):
    name = "rdp"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._seen = [False, False]

    def feed(self, direction: int, data: bytes) -> None:
        if self._seen[direction]:
            return
        buf = self._bufs[direction] + data
        if len(buf) < 4:
            self._bufs[direction] = buf
            return
        size = int.from_bytes(buf[2:4], "big")
        if buf[0] != TPKT_VERSION or not 7 <= size <= MAX_TPKT:
            raise ParseError(
                f"rdp: TPKT header {buf[:4].hex()} (direction {direction})"
            )
        if len(buf) < size:
            self._bufs[direction] = buf
            return
        self._seen[direction] = True
        self._bufs[direction] = b""
        if direction == 0:
            self._on_request(Cursor(buf, 4, size))
        else:
            self._on_confirm(Cursor(buf, 4, size), buf[size:])
        self.done = self.done or all(self._seen)

    def _on_request(self, c: Cursor) -> None:
        x224 = c.sub(c.u8("rdp x224 length"), "rdp x224 header")
        if x224.u8("rdp x224 code") & 0xF0 != X224_CR:
            raise ParseError("rdp: the client's first TPKT is not a connection request")
        x224.skip(5, "rdp x224 references and class")
        rest = x224.take(x224.remaining)
        if rest.startswith(COOKIE):
            end = rest.find(b"\r\n")
            if end < 0:
                raise ParseError("rdp cookie without CR LF")
            self.sink.add("fpc.rdp.cookie", rest[len(COOKIE) : end].decode("latin-1"))
            rest = rest[end + 2 :]
        neg = Cursor(rest)
        if neg.remaining >= 8 and neg.u8("rdp neg type") == NEG_REQ:
            neg.skip(3, "rdp neg flags and length")
            bits = neg.u32le("rdp requested protocols")
            for name in protocol_names(bits):
                self.sink.add("fpc.rdp.requested_protocols", name)

    def _on_confirm(self, c: Cursor, after: bytes) -> None:
        x224 = c.sub(c.u8("rdp x224 length"), "rdp x224 header")
        if x224.u8("rdp x224 code") & 0xF0 != X224_CC:
            return
        x224.skip(5, "rdp x224 references and class")
        if x224.remaining < 8 or x224.u8("rdp neg type") != NEG_RSP:
            return
        x224.skip(3, "rdp neg flags and length")
        selected = x224.u32le("rdp selected protocol")
        self.sink.add("fpc.rdp.selected_protocol", protocol_names(selected)[-1])
        if selected & _TLS_PROTOCOLS:
            self.handoff = (self._bufs[0], after)
            self.done = True


register(
    ParserSpec(
        name="rdp",
        transports=frozenset({"tcp"}),
        ports=frozenset({3389}),
        classify=classify,
        create=RdpParser,
    )
)
