"""RADIUS parser (UDP 1812/1813, 1645/1646): message types, user, NAS, client.

In: the datagrams of a session from `fpc.appl.state`. Out: the message types
(access-request, accounting-response, ...), the User-Name, the NAS address
and port, the Framed-IP-Address given to the user and the Calling-Station-Id
(often the client's MAC, then also in `fpc.radius.mac`) in `fpc.radius.*`.

Layout (RFC 2865 sections 3 and 5, RFC 2866)::

    packet     code(8) identifier(8) length(16) authenticator(16B) attributes
    attribute  type(8) length(8) value          (length counts type and length)
"""

from __future__ import annotations

import ipaddress
import re

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

HDR_LEN = 20
MAX_MESSAGES = 64
MAX_ATTRIBUTES = 128
CODES = {
    1: "access-request", 2: "access-accept", 3: "access-reject",
    4: "accounting-request", 5: "accounting-response", 11: "access-challenge",
    12: "status-server", 13: "status-client", 40: "disconnect-request",
    41: "disconnect-ack", 42: "disconnect-nak", 43: "coa-request", 44: "coa-ack",
    45: "coa-nak",
}  # fmt: skip
ATTR_USER_NAME, ATTR_NAS_IP, ATTR_NAS_PORT, ATTR_FRAMED_IP = 1, 4, 5, 8
ATTR_CALLING_STATION = 31
_HEX12 = re.compile(r"[0-9a-f]{12}")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """On the RADIUS ports: a known code and a length that fits the datagram."""
    ok = (
        port_hint
        and len(data) >= HDR_LEN
        and data[0] in CODES
        and HDR_LEN <= int.from_bytes(data[2:4], "big") <= len(data)
    )
    return Verdict.YES if ok else Verdict.NO


class RadiusParser(Parser):
    name = "radius"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        c = Cursor(data)
        code = c.u8("radius code")
        c.skip(1, "radius identifier")
        length = c.u16("radius length")
        if length < HDR_LEN or length > len(data):
            raise ParseError(f"radius length {length} for a {len(data)}-byte datagram")
        c = Cursor(data, 4, length)
        c.skip(16, "radius authenticator")
        self.sink.add("fpc.radius.message_type", CODES.get(code, str(code)))
        for _ in range(MAX_ATTRIBUTES):
            if not c.remaining:
                break
            kind, size = c.u8("radius attribute type"), c.u8("radius attribute length")
            if size < 2:
                raise ParseError(f"radius attribute {kind} with length {size}")
            self._on_attribute(kind, c.take(size - 2, "radius attribute value"))

    def _on_attribute(self, kind: int, value: bytes) -> None:
        if kind == ATTR_USER_NAME and value:
            self.sink.add("fpc.radius.user", value.decode("utf-8", "backslashreplace"))
        elif kind in (ATTR_NAS_IP, ATTR_FRAMED_IP) and len(value) == 4:
            field = (
                "fpc.radius.nas_ip" if kind == ATTR_NAS_IP else "fpc.radius.framed_ip"
            )
            self.sink.add(field, str(ipaddress.IPv4Address(value)))
        elif kind == ATTR_NAS_PORT and len(value) == 4:
            self.sink.add("fpc.radius.nas_port", int.from_bytes(value, "big"))
        elif kind == ATTR_CALLING_STATION and value:
            text = value.decode("latin-1")
            self.sink.add("fpc.radius.calling_station_id", text)
            digits = re.sub(r"[-:.]", "", text).lower()
            if _HEX12.fullmatch(digits):
                mac = ":".join(digits[i : i + 2] for i in range(0, 12, 2))
                self.sink.add("fpc.radius.mac", mac)


register(
    ParserSpec(
        name="radius",
        transports=frozenset({"udp"}),
        ports=frozenset({1812, 1813, 1645, 1646}),
        classify=classify,
        create=RadiusParser,
    )
)
