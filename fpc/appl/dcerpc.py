"""DCE/RPC over TCP (connection-oriented, port 135 and dynamic ports): NTLM
logins in the authentication trailers of BIND, ALTER_CONTEXT and AUTH3 PDUs.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
protocol name "dcerpc" and the `fpc.ntlm.*` fields of the NTLMSSP messages
(`fpc.appl.ntlm`). Interface UUIDs and operation numbers are not read.

PDU header (DCE 1.1 RPC chapter 12.6; C706)::

    rpc_vers(8)=5 minor(8)=0|1 ptype(8) flags(8) drep(4B) frag_length(16)
    auth_length(16) call_id(32)   -- numbers in the byte order drep[0] names
    ... body ...  [auth trailer: type(8) level(8) pad(8) rsvd(8) ctx(32)
                   credentials(auth_length)]   at the end of the fragment
"""

from __future__ import annotations

from fpc.appl import ntlm
from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

HDR_LEN = 16
MAX_PDUS = 64  # PDUs read per direction; the NTLM exchange comes first
# PDU types that open or authenticate an association (those carry NTLMSSP):
# bind, bind_ack, alter_context, alter_context_resp, auth3.
AUTH_PTYPES = frozenset({11, 12, 14, 15, 16})
KNOWN_PTYPES = frozenset(range(20))


def _header_ok(head: bytes) -> bool:
    return head[0] == 5 and head[1] in (0, 1) and head[2] in KNOWN_PTYPES


def _u16(head: bytes, at: int) -> int:
    """A header number in the PDU's byte order (drep: 0x10 little-endian)."""
    return int.from_bytes(head[at : at + 2], "little" if head[4] & 0x10 else "big")


def frag_length(head: bytes) -> int:
    """Length of the PDU whose header starts `head`."""
    size = _u16(head, 8)
    if size < HDR_LEN or not _header_ok(head):
        raise ParseError(f"dcerpc pdu header {head.hex()} is not DCE/RPC v5")
    return size


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A v5 header; off port 135 only a BIND whose length fits what came."""
    if len(data) < HDR_LEN:
        return Verdict.MORE if data[:1] in (b"", b"\x05") else Verdict.NO
    if not _header_ok(data):
        return Verdict.NO
    if port_hint:
        return Verdict.YES
    size = _u16(data, 8)
    return Verdict.YES if data[2] == 11 and HDR_LEN < size <= len(data) else Verdict.NO


class DceRpcParser(Parser):
    name = "dcerpc"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._pdus = [0, 0]

    def feed(self, direction: int, data: bytes) -> None:
        if self._pdus[direction] >= MAX_PDUS:
            return
        buf = self._bufs[direction]
        buf.add(data)
        while (pdu := buf.next_frame(HDR_LEN, frag_length)) is not None:
            self._pdus[direction] += 1
            if pdu[2] in AUTH_PTYPES and ntlm.SIGNATURE in pdu:
                ntlm.scan(self.sink, pdu)
            if self._pdus[direction] >= MAX_PDUS:
                buf.clear()
                self.done = min(self._pdus) >= MAX_PDUS
                return

    def end(self, direction: int) -> None:
        self._bufs[direction].clear()


register(
    ParserSpec(
        name="dcerpc",
        transports=frozenset({"tcp"}),
        ports=frozenset({135}),
        classify=classify,
        create=DceRpcParser,
    )
)
