"""STUN/TURN parser (UDP and TCP 3478, TURN on any port): messages, user,
realm, errors and the XOR-coded addresses.

In: the datagrams, or in-order stream bytes, of a session from
`fpc.appl.state`. Out: the message types ("Binding Request", "Allocate Error",
...), USERNAME, REALM, SOFTWARE, ERROR-CODE, and the mapped, relayed and peer
addresses (with their ports as "ip:port"), in `fpc.stun.*`. Over TCP, TURN
ChannelData frames between messages are skipped.

Layout (RFC 8489 sections 5, 14; RFC 8656 sections 12, 14)::

    message   0 0 type(14) length(16) cookie(32)=0x2112A442 transaction(96B)
              attributes: type(16) length(16) value, padded to 4 bytes
    type      method bits M11..M0 and class bits C1 C0 interleaved:
              M11-M7 C1 M6-M4 C0 M3-M0
    XOR addr  0(8) family(8) port(16)^0x2112 address^cookie[^transaction]
    channel   number(16) 0x4000..0x7FFF length(16) data (TCP: padded to 4)
    text      "RSP/<version> " word CRLF headers CRLF CRLF, the word holding
              "STUN" ("STUN", "CLI_STUN_FIREWALLCHECK"): a text variant seen on
              UDP and TCP 3478; named STUN, no fields taken
"""

from __future__ import annotations

import ipaddress
import re

from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

COOKIE = bytes.fromhex("2112a442")
HDR_LEN = 20
MAX_MESSAGE = 8192
MAX_MESSAGES = 128
METHODS = {1: "Binding", 3: "Allocate", 4: "Refresh", 6: "Send", 7: "Data",
           8: "CreatePermission", 9: "ChannelBind"}  # fmt: skip
CLASSES = ("Request", "Indication", "Response", "Error")
ATTR_USERNAME, ATTR_ERROR, ATTR_REALM, ATTR_SOFTWARE = 0x0006, 0x0009, 0x0014, 0x8022
XOR_ADDRESSES = {0x0020: "mapped", 0x0012: "peer", 0x0016: "relayed"}
_TEXT = {ATTR_USERNAME: "user", ATTR_REALM: "realm", ATTR_SOFTWARE: "software"}
TEXT_START = b"RSP/"
_TEXT_LINE = re.compile(rb"RSP/\d+\.\d+ \S*STUN\S*\Z")
MAX_TEXT_LINE = 128  # bytes of a text variant's first line waited for (TCP)


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A STUN header with the magic cookie; on the STUN ports, also a classic
    (RFC 3489) header whose length fills the datagram."""
    if port_hint and data.startswith(TEXT_START):
        return _classify_text(transport, data)
    if len(data) < HDR_LEN:
        return (
            Verdict.MORE if transport == "tcp" and data[4:8] in COOKIE else Verdict.NO
        )
    length = int.from_bytes(data[2:4], "big")
    if data[0] & 0xC0 or length > MAX_MESSAGE:
        return Verdict.NO
    if data[4:8] == COOKIE:
        return Verdict.YES
    classic = transport == "udp" and HDR_LEN + length == len(data) and length % 4 == 0
    return Verdict.YES if port_hint and classic else Verdict.NO


def _classify_text(transport: str, data: bytes) -> Verdict:
    """The first line of the text variant; over TCP it may come in pieces."""
    line, crlf, _ = data.partition(b"\r\n")
    if not crlf and transport == "tcp":
        return Verdict.MORE if len(line) < MAX_TEXT_LINE else Verdict.NO
    return Verdict.YES if _TEXT_LINE.match(line) else Verdict.NO


def message_type(value: int) -> str:
    method = (value & 0x000F) | ((value >> 1) & 0x0070) | ((value >> 2) & 0x0F80)
    kind = ((value >> 7) & 2) | ((value >> 4) & 1)
    return f"{METHODS.get(method, f'0x{method:03x}')} {CLASSES[kind]}"


def _frame_len(head: bytes) -> int:
    """STUN over TCP: a message (20-byte header + length), or a ChannelData
    frame (4-byte header + length, padded to 4)."""
    size = int.from_bytes(head[2:4], "big")
    if size > MAX_MESSAGE:
        raise ParseError(f"stun frame of {size} bytes (max {MAX_MESSAGE})")
    if head[0] & 0xC0 == 0x40:
        return 4 + (size + 3) // 4 * 4
    return HDR_LEN + size


class StunParser(Parser):
    name = "stun"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._messages = 0
        self._started = [False, False]  # per direction: bytes seen

    def feed(self, direction: int, data: bytes) -> None:
        if self.transport != "tcp":
            if not data.startswith(TEXT_START):
                self._on_message(data)
            return
        buf = self._bufs[direction]
        if not self._started[direction] and data.startswith(TEXT_START):
            self.done = True  # the text variant: nothing is taken from it
            return
        self._started[direction] = True
        buf.add(data)
        while not self.done and (frame := buf.next_frame(4, _frame_len)) is not None:
            if frame[0] & 0xC0 == 0:  # a STUN message; ChannelData is skipped
                self._on_message(frame)

    def _on_message(self, msg: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        c = Cursor(msg)
        kind = c.u16("stun type")
        length = c.u16("stun length")
        transaction = c.take(16, "stun cookie and transaction id")
        if transaction[:4] != COOKIE:
            transaction = b""  # RFC 3489: no cookie, no XOR-coded addresses
        c = Cursor(msg, HDR_LEN)
        c = c.sub(min(length, c.remaining), "stun attributes")
        self.sink.add("fpc.stun.message_type", message_type(kind))
        while c.remaining >= 4:
            attr = c.u16("stun attribute type")
            size = c.u16("stun attribute length")
            value = c.take(size, "stun attribute value")
            c.skip(min(-size % 4, c.remaining), "stun padding")
            self._on_attribute(attr, value, transaction)

    def _on_attribute(self, attr: int, value: bytes, transaction: bytes) -> None:
        if attr in _TEXT and value:
            text = value.split(b"\x00", 1)[0]  # UTF-8 text never holds a NUL
            if text:
                name = f"fpc.stun.{_TEXT[attr]}"
                self.sink.add(name, text.decode("utf-8", "backslashreplace"))
        elif attr == ATTR_ERROR and len(value) >= 4:
            self.sink.add("fpc.stun.error_code", (value[2] & 7) * 100 + value[3])
        elif attr in XOR_ADDRESSES and len(value) in (8, 20) and transaction:
            address = _xor_address(value, transaction)
            self.sink.add(f"fpc.stun.{XOR_ADDRESSES[attr]}_address", address)


def _xor_address(value: bytes, transaction: bytes) -> str:
    port = int.from_bytes(value[2:4], "big") ^ 0x2112
    mask = COOKIE + transaction[4:]
    raw = bytes(b ^ m for b, m in zip(value[4:], mask, strict=False))
    ip = ipaddress.ip_address(raw)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


register(
    ParserSpec(
        name="stun",
        transports=frozenset({"udp", "tcp"}),
        ports=frozenset({3478, 5349}),
        classify=classify,
        create=StunParser,
    )
)
