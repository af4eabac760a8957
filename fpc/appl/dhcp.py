"""DHCP parser (BOOTP over UDP 67/68): message types, client and addresses.

In: the datagrams of a session from `fpc.appl.state`. Out: the DHCP message
types (DISCOVER, OFFER, ...), transaction ids, the client's hardware address,
host name and vendor class, the address it asked for and the address the
server assigned, in `fpc.dhcp.*`. Each message stands alone, so every
datagram is read, up to MAX_MESSAGES per session.

Layout (RFC 2131 section 2, RFC 2132)::

    op(8) htype(8) hlen(8) hops(8) xid(32) secs(16) flags(16)
    ciaddr(32) yiaddr(32) siaddr(32) giaddr(32) chaddr(16B) sname(64B) file(128B)
    magic cookie 99.130.83.99(32)  options: code(8) [len(8) data]; 0 pad, 255 end
"""

from __future__ import annotations

import ipaddress

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAGIC_COOKIE = bytes((99, 130, 83, 99))
BOOTP_FIXED_LEN = 236  # bytes before the magic cookie
HTYPE_ETHERNET = 1
MAX_MESSAGES = 64
OPT_PAD, OPT_END = 0, 255
OPT_HOST_NAME, OPT_REQUESTED_IP, OPT_MESSAGE_TYPE, OPT_VENDOR_CLASS = 12, 50, 53, 60
OPT_SERVER_ID = 54
MESSAGE_TYPES = {
    1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK",
    7: "RELEASE", 8: "INFORM", 9: "FORCERENEW", 10: "LEASEQUERY",
    11: "LEASEUNASSIGNED", 12: "LEASEUNKNOWN", 13: "LEASEACTIVE",
}  # fmt: skip
_TEXT_OPTIONS = {
    OPT_HOST_NAME: "fpc.dhcp.host_name",
    OPT_VENDOR_CLASS: "fpc.dhcp.vendor_class",
}


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """BOOTP request or reply with the DHCP magic cookie in place."""
    ok = (
        len(data) >= BOOTP_FIXED_LEN + 4
        and data[0] in (1, 2)
        and data[2] <= 16
        and data[BOOTP_FIXED_LEN : BOOTP_FIXED_LEN + 4] == MAGIC_COOKIE
    )
    return Verdict.YES if ok else Verdict.NO


class DhcpParser(Parser):
    name = "dhcp"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        if self._messages >= MAX_MESSAGES:
            self.done = True
        c = Cursor(data)
        c.skip(1, "dhcp op")
        htype, hlen = c.u8("dhcp htype"), c.u8("dhcp hlen")
        c.skip(1, "dhcp hops")
        self.sink.add("fpc.dhcp.transaction_id", f"{c.u32('dhcp xid'):x}")
        c.skip(4, "dhcp secs/flags")
        ciaddr = c.take(4, "dhcp ciaddr")
        yiaddr = c.take(4, "dhcp yiaddr")
        c.skip(8, "dhcp siaddr/giaddr")
        chaddr = c.take(16, "dhcp chaddr")
        c.skip(192, "dhcp sname/file")
        if c.take(4, "dhcp magic cookie") != MAGIC_COOKIE:
            raise ParseError("dhcp message without the magic cookie")
        if htype == HTYPE_ETHERNET and hlen == 6:
            self.sink.add("fpc.dhcp.client_mac", chaddr[:6].hex(":"))
        if any(yiaddr):
            self.sink.add("fpc.dhcp.assigned_ip", str(ipaddress.IPv4Address(yiaddr)))
        for address in (ciaddr, yiaddr):  # the unicast packets' addresses
            if any(address):
                self.sink.add("related.ip", str(ipaddress.IPv4Address(address)))
        self._read_options(c)

    def _read_options(self, c: Cursor) -> None:
        while c.remaining:
            code = c.u8("dhcp option code")
            if code == OPT_END:
                return
            if code == OPT_PAD:
                continue
            value = c.take(c.u8("dhcp option length"), "dhcp option")
            self._on_option(code, value)

    def _on_option(self, code: int, value: bytes) -> None:
        if code == OPT_MESSAGE_TYPE and len(value) == 1:
            name = MESSAGE_TYPES.get(value[0], f"TYPE{value[0]}")
            self.sink.add("fpc.dhcp.message_type", name)
        elif code == OPT_SERVER_ID and len(value) == 4 and any(value):
            self.sink.add("related.ip", str(ipaddress.IPv4Address(value)))
        elif code == OPT_REQUESTED_IP and len(value) == 4:
            self.sink.add("fpc.dhcp.requested_ip", str(ipaddress.IPv4Address(value)))
        elif code in _TEXT_OPTIONS and value:
            text = value.rstrip(b"\x00").decode("utf-8", "backslashreplace")
            self.sink.add(_TEXT_OPTIONS[code], text)


register(
    ParserSpec(
        name="dhcp",
        transports=frozenset({"udp"}),
        ports=frozenset({67, 68}),
        classify=classify,
        create=DhcpParser,
    )
)
