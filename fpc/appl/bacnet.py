"""BACnet/IP parser (UDP 47808): BVLC functions, APDU types and services.

In: the datagrams of a session from `fpc.appl.state`. Out:
`fpc.bacnet.function` (the BVLC function), `fpc.bacnet.apdu_type` and
`fpc.bacnet.service` (the confirmed or unconfirmed service choice, by its
ASHRAE 135 name). Network-layer messages (no APDU) give the function only.
After MAX_MESSAGES datagrams the parser stops.

Layout (ASHRAE 135 Annex J.2 BVLC, clause 6.2 NPDU, clause 20.1 APDU)::

    BVLC      type(8)=0x81 function(8) length(16, the whole datagram)
              [forwarded-npdu: original source address(6B)]
    NPDU      version(8)=1 control(8): bit 7 network message, bit 5 DNET,
              bit 3 SNET; [DNET(16) DLEN(8) DADR] [SNET(16) SLEN(8) SADR]
              [hop count(8) when DNET] [message type(8) when bit 7]
    APDU      type(4) flags(4), then by type:
              0 confirmed    max_segs/max_resp(8) invoke(8)
                             [seq(8) window(8) when segmented] service(8)
              1 unconfirmed  service(8)
              2 simple ack, 5 error: invoke(8) service(8)
              3 complex ack  invoke(8) [seq(8) window(8) when segmented]
                             service(8)
              4 segment ack, 6 reject, 7 abort: no service
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

BVLC_TYPE = 0x81
FORWARDED_NPDU = 0x04
FUNCTIONS = ("result", "write-bdt", "read-bdt", "read-bdt-ack", "forwarded-npdu",
             "register-foreign-device", "read-fdt", "read-fdt-ack",
             "delete-fdt-entry", "distribute-broadcast", "original-unicast",
             "original-broadcast", "secure-bvll")  # fmt: skip
NPDU_VERSION = 1
NET_MESSAGE, HAS_DNET, HAS_SNET = 0x80, 0x20, 0x08
APDU_TYPES = ("confirmed-request", "unconfirmed-request", "simple-ack", "complex-ack",
              "segment-ack", "error", "reject", "abort")  # fmt: skip
CONFIRMED, UNCONFIRMED, SIMPLE_ACK, COMPLEX_ACK, ERROR = 0, 1, 2, 3, 5
SEGMENTED = 0x08  # in the first APDU byte of confirmed requests and complex acks
CONFIRMED_SERVICES = (
    "acknowledge-alarm", "confirmed-cov-notification", "confirmed-event-notification",
    "get-alarm-summary", "get-enrollment-summary", "subscribe-cov",
    "atomic-read-file", "atomic-write-file", "add-list-element",
    "remove-list-element", "create-object", "delete-object", "read-property",
    "read-property-conditional", "read-property-multiple", "write-property",
    "write-property-multiple", "device-communication-control",
    "confirmed-private-transfer", "confirmed-text-message", "reinitialize-device",
    "vt-open", "vt-close", "vt-data", "authenticate", "request-key", "read-range",
    "life-safety-operation", "subscribe-cov-property", "get-event-information",
    "subscribe-cov-property-multiple", "confirmed-cov-notification-multiple",
    "confirmed-audit-notification", "audit-log-query",
)  # fmt: skip
UNCONFIRMED_SERVICES = (
    "i-am", "i-have", "unconfirmed-cov-notification",
    "unconfirmed-event-notification", "unconfirmed-private-transfer",
    "unconfirmed-text-message", "time-synchronization", "who-has", "who-is",
    "utc-time-synchronization", "write-group", "unconfirmed-cov-notification-multiple",
    "unconfirmed-audit-notification", "who-am-i", "you-are",
)  # fmt: skip
MAX_MESSAGES = 64


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A BVLC header whose length is the datagram's, with a known function."""
    if len(data) < 4 or data[0] != BVLC_TYPE or data[1] >= len(FUNCTIONS):
        return Verdict.NO
    fits = int.from_bytes(data[2:4], "big") == len(data)
    npdu = _npdu_at(data)
    npdu_ok = npdu < 0 or (len(data) > npdu and data[npdu] == NPDU_VERSION)
    return Verdict.YES if fits and npdu_ok and (port_hint or npdu >= 0) else Verdict.NO


def _npdu_at(data: bytes) -> int:
    """Offset of the NPDU after the BVLC header, or -1 for BVLC-only functions."""
    function = data[1]
    if function == FORWARDED_NPDU:
        return 10
    return 4 if FUNCTIONS[function].startswith(("original", "distribute")) else -1


class BacnetParser(Parser):
    name = "bacnet"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        c = Cursor(data)
        if c.u8("bacnet bvlc type") != BVLC_TYPE:
            raise ParseError(f"bacnet datagram of type 0x{data[0]:02x}, not BVLC")
        function = c.u8("bacnet bvlc function")
        if function >= len(FUNCTIONS):
            raise ParseError(f"bacnet bvlc function 0x{function:02x} is unknown")
        self.sink.add("fpc.bacnet.function", FUNCTIONS[function])
        npdu = _npdu_at(data)
        if npdu >= 0:
            self._on_npdu(Cursor(data, npdu))

    def _on_npdu(self, c: Cursor) -> None:
        if c.u8("bacnet npdu version") != NPDU_VERSION:
            return  # a damaged datagram (one in the corpus lacks its NPDU): skipped
        control = c.u8("bacnet npdu control")
        if control & HAS_DNET:
            c.skip(2, "bacnet dnet")
            c.skip(c.u8("bacnet dlen"), "bacnet dadr")
        if control & HAS_SNET:
            c.skip(2, "bacnet snet")
            c.skip(c.u8("bacnet slen"), "bacnet sadr")
        if control & HAS_DNET:
            c.skip(1, "bacnet hop count")
        if not control & NET_MESSAGE and c.remaining:
            self._on_apdu(c)

    def _on_apdu(self, c: Cursor) -> None:
        first = c.u8("bacnet apdu type")
        kind = first >> 4
        if kind >= len(APDU_TYPES):
            raise ParseError(f"bacnet apdu type {kind} is unknown")
        self.sink.add("fpc.bacnet.apdu_type", APDU_TYPES[kind])
        if kind == UNCONFIRMED:
            self._add_service(UNCONFIRMED_SERVICES, c.u8("bacnet service"))
            return
        if kind not in (CONFIRMED, SIMPLE_ACK, COMPLEX_ACK, ERROR):
            return
        c.skip(2 if kind == CONFIRMED else 1, "bacnet invoke id")
        if kind in (CONFIRMED, COMPLEX_ACK) and first & SEGMENTED:
            c.skip(2, "bacnet segment number and window")
        self._add_service(CONFIRMED_SERVICES, c.u8("bacnet service"))

    def _add_service(self, names: tuple[str, ...], choice: int) -> None:
        name = names[choice] if choice < len(names) else str(choice)
        self.sink.add("fpc.bacnet.service", name)


register(
    ParserSpec(
        name="bacnet",
        transports=frozenset({"udp"}),
        ports=frozenset({47808}),
        classify=classify,
        create=BacnetParser,
    )
)
