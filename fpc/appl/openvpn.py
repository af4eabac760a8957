"""OpenVPN parser (UDP and TCP): the TLS handshake on its control channel.

In: the datagrams (UDP) or in-order bytes (TCP, a 16-bit length before each
packet) of a session from `fpc.appl.state`. Out: the TLS fields of the
handshake carried in P_CONTROL_V1 packets, read by a `fpc.appl.tls`
parser fed the control channel in message order. With tls-auth each packet
also carries an HMAC and a replay id; the HMAC size (SHA-1, SHA-256 or
SHA-512) is found from the first control packet, whose payload must start a
TLS record.

Layout (OpenVPN protocol, ssl_pkt.h / "openvpn-rfc" draft)::

    packet   opcode(5) key_id(3) session_id(64)
             [hmac(160|256|512) replay_id(32) time(32)]        (tls-auth)
             ack_count(8) [ack_ids(32 * n) remote_session_id(64) if n]
             [message_id(32) payload]        (P_CONTROL_* packets only)
    TCP      length(16) packet
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink
from fpc.appl.tls import TlsParser

HARD_RESET_CLIENT_V2, HARD_RESET_CLIENT_V3 = 7, 10
CONTROL_V1, ACK_V1 = 4, 5
HMAC_SIZES = (0, 20, 32, 64)  # none, SHA-1, SHA-256, SHA-512
MAX_PACKET = 2048  # control packets are small; longer ones are data
MAX_HELD = 32  # control messages held waiting for an earlier one
MAX_CONTROL = 64  # control packets read per direction


def _opcode(first: int) -> int:
    return first >> 3


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client hard reset (v2 or v3) of key 0 whose size fits a layout."""
    if direction != 0 or not data:
        return Verdict.NO
    sizes = {14 + h + (8 if h else 0) for h in HMAC_SIZES}
    if transport == "tcp":
        if len(data) < 3:
            return Verdict.MORE if data[0] == 0 else Verdict.NO
        size = int.from_bytes(data[:2], "big")
        if size not in sizes and not (port_hint and size < MAX_PACKET):
            return Verdict.NO
        if len(data) < 2 + size:
            return Verdict.MORE
        data = data[2 : 2 + size]
    ok = data[0] & 7 == 0 and _opcode(data[0]) in (
        HARD_RESET_CLIENT_V2,
        HARD_RESET_CLIENT_V3,
    )
    return Verdict.YES if ok and (len(data) in sizes or port_hint) else Verdict.NO


class OpenVpnParser(Parser):
    name = "openvpn"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._tls = TlsParser(sink, "udp" if transport == "udp" else "tcp")
        self._hmac: int | None = None
        # Next control message id per direction; each side's hard reset took
        # id 0, so the handshake starts at 1.
        self._next: list[int | None] = [None, None]
        self._held: list[dict[int, bytes]] = [{}, {}]
        self._count = [0, 0]
        self._bufs = [b"", b""]

    def feed(self, direction: int, data: bytes) -> None:
        if self.transport != "tcp":
            self._on_packet(direction, data)
            return
        buf = self._bufs[direction] + data
        at = 0  # an offset, not slicing `buf` per packet: many small packets
        while len(buf) - at >= 2 and not self.done:
            size = int.from_bytes(buf[at : at + 2], "big")
            if size == 0:
                raise ParseError("openvpn tcp packet of 0 bytes (no opcode)")
            if (
                size > MAX_PACKET
                and _opcode(buf[at + 2] if len(buf) > at + 2 else 0) != 9
            ):
                raise ParseError(f"openvpn tcp packet of {size} bytes")
            if len(buf) - at < 2 + size:
                break
            self._on_packet(direction, buf[at + 2 : at + 2 + size])
            at += 2 + size
        buf = buf[at:]
        self._bufs[direction] = buf[-MAX_PACKET:] if self.done else buf

    def _on_packet(self, direction: int, packet: bytes) -> None:
        if not packet:
            return
        opcode = _opcode(packet[0])
        if opcode in (HARD_RESET_CLIENT_V2, HARD_RESET_CLIENT_V3) and direction == 0:
            if self._hmac is None and len(packet) - 22 in HMAC_SIZES[1:]:
                self._hmac = len(packet) - 22  # 14 bytes + HMAC + replay id
            elif self._hmac is None and len(packet) == 14:
                self._hmac = 0
        if opcode != CONTROL_V1:
            return
        self._count[direction] += 1
        if self._count[direction] > MAX_CONTROL:
            self.done = True
            return
        if self._hmac is None:
            self._hmac = _find_hmac_size(packet)
        msg_id, payload = _control_payload(packet, self._hmac)
        expected = self._next[direction]
        if expected is None:  # the hard reset had id 0 (unless not captured)
            expected = min(msg_id, 1)
        held = self._held[direction]
        if msg_id >= expected and len(held) < MAX_HELD:
            held.setdefault(msg_id, payload)
        while expected in held:
            self._tls.feed(direction, held.pop(expected))
            expected += 1
        self._next[direction] = expected
        self.done = self._tls.done


def _control_payload(packet: bytes, hmac: int) -> tuple[int, bytes]:
    c = Cursor(packet, 9)  # opcode and session id
    if hmac:
        c.skip(hmac + 8, "openvpn tls-auth hmac and replay id")
    acks = c.u8("openvpn ack count")
    if acks:
        c.skip(4 * acks + 8, "openvpn acks and remote session id")
    msg_id = c.u32("openvpn message id")
    return msg_id, c.take(c.remaining)


def _find_hmac_size(packet: bytes) -> int:
    for size in HMAC_SIZES:
        try:
            _, payload = _control_payload(packet, size)
        except ParseError:
            continue
        if payload[:2] == b"\x16\x03":
            return size
    raise ParseError("openvpn: no layout puts a TLS record in the first control packet")


register(
    ParserSpec(
        name="openvpn",
        transports=frozenset({"udp", "tcp"}),
        ports=frozenset({1194}),
        classify=classify,
        create=OpenVpnParser,
    )
)
