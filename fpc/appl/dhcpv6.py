"""DHCPv6 parser (UDP 546/547): message types, transaction ids, addresses.

In: the datagrams of a session from `fpc.appl.state`. Out: the message types
(SOLICIT, ADVERTISE, ...), transaction ids, the addresses the server offers
or assigns (IA Address options inside IA_NA) and the client's FQDN, in the
same `fpc.dhcp.*` fields as DHCP for IPv4.

Layout (RFC 8415 sections 8, 21)::

    client/server message  msg-type(8) transaction-id(24) options
    option                 option-code(16) option-len(16) data
    IA_NA (3)              IAID(32) T1(32) T2(32) options
    IA Address (5)         address(128) preferred(32) valid(32) options
    Client FQDN (39)       flags(8) domain name (DNS wire labels)
"""

from __future__ import annotations

import ipaddress

from fpc.appl.cursor import Cursor
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_MESSAGES = 64
MAX_OPTIONS = 64  # options read per message (and per IA_NA)
OPT_IA_NA, OPT_IAADDR, OPT_CLIENT_FQDN = 3, 5, 39
MESSAGE_TYPES = {
    1: "SOLICIT", 2: "ADVERTISE", 3: "REQUEST", 4: "CONFIRM", 5: "RENEW",
    6: "REBIND", 7: "REPLY", 8: "RELEASE", 9: "DECLINE", 10: "RECONFIGURE",
    11: "INFORMATION-REQUEST",
}  # fmt: skip
DHCPV6_PORTS = frozenset({546, 547})


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client/server message type on the DHCPv6 ports whose options parse."""
    if not port_hint or len(data) < 4 or data[0] not in MESSAGE_TYPES:
        return Verdict.NO
    try:
        _options(Cursor(data, 4))
    except ValueError:
        return Verdict.NO
    return Verdict.YES


def _options(c: Cursor) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while c.remaining and len(out) < MAX_OPTIONS:
        code = c.u16("dhcpv6 option code")
        out.append((code, c.take(c.u16("dhcpv6 option length"), "dhcpv6 option")))
    return out


def _fqdn(wire: bytes) -> str:
    c = Cursor(wire)
    labels = []
    while c.remaining:
        size = c.u8("dhcpv6 fqdn label length")
        if size == 0:
            break
        labels.append(c.take(size, "dhcpv6 fqdn label").decode("ascii", "replace"))
    return ".".join(labels).lower()


class Dhcpv6Parser(Parser):
    name = "dhcpv6"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        if self._messages >= MAX_MESSAGES:
            self.done = True
        c = Cursor(data)
        kind = c.u8("dhcpv6 msg-type")
        self.sink.add("fpc.dhcp.message_type", MESSAGE_TYPES.get(kind, f"TYPE{kind}"))
        self.sink.add("fpc.dhcp.transaction_id", f"{c.u24('dhcpv6 xid'):x}")
        for code, value in _options(c):
            if code == OPT_IA_NA and len(value) >= 12:
                self._on_ia_na(value[12:])
            elif code == OPT_CLIENT_FQDN and len(value) > 1:
                self.sink.add("fpc.dhcp.host_name", _fqdn(value[1:]))

    def _on_ia_na(self, options: bytes) -> None:
        for code, value in _options(Cursor(options)):
            if code == OPT_IAADDR and len(value) >= 16:
                address = ipaddress.IPv6Address(value[:16])
                self.sink.add("fpc.dhcp.assigned_ip", str(address))
                self.sink.add("related.ip", str(address))


register(
    ParserSpec(
        name="dhcpv6",
        transports=frozenset({"udp"}),
        ports=DHCPV6_PORTS,
        classify=classify,
        create=Dhcpv6Parser,
    )
)
