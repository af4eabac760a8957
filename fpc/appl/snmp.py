"""SNMP parser (UDP 161/162): version, community, PDU types, OIDs, SNMPv3 USM.

In: the datagrams of a session from `fpc.appl.state`. Out: `fpc.snmp.version`
(1, 2 for v2c, 3), the community string of v1/v2c, the PDU type, the OIDs of
the variable bindings, a non-zero error status, and for SNMPv3 the
authoritative engine id, the user name and the security level.

Layout (RFC 3416 section 3, RFC 3412 section 6, RFC 3414 section 2.4), BER::

    v1/v2c  SEQUENCE { version INTEGER (0|1), community OCTET STRING, pdu }
    v3      SEQUENCE { version 3, SEQUENCE { id, maxSize, flags OCTET STRING,
                       model }, usm OCTET STRING, scopedPDU or encrypted }
    usm     SEQUENCE { engineID, boots, time, userName, auth, priv }
    pdu     [0..8] { request-id, error-status, error-index,
                     SEQUENCE OF SEQUENCE { name OID, value } }
"""

from __future__ import annotations

from fpc.appl.ber import (
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    expect,
    oid_text,
    read_int,
    read_text,
    read_tlv,
)
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_MESSAGES = 64
MAX_VARBINDS = 64  # OIDs read per PDU
PDU_TYPES = (
    "GetRequest", "GetNextRequest", "GetResponse", "SetRequest", "Trap",
    "GetBulkRequest", "InformRequest", "SNMPv2-Trap", "Report",
)  # fmt: skip
ERRORS = (
    "noError", "tooBig", "noSuchName", "badValue", "readOnly", "genErr",
    "noAccess", "wrongType", "wrongLength", "wrongEncoding", "wrongValue",
    "noCreation", "inconsistentValue", "resourceUnavailable", "commitFailed",
    "undoFailed", "authorizationError", "notWritable", "inconsistentName",
)  # fmt: skip
SECURITY_LEVELS = ("noAuthNoPriv", "authNoPriv", "authNoPriv", "authPriv")
TRAP_V1 = 4


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A SEQUENCE holding version 0, 1 or 3; on the SNMP ports only."""
    if not port_hint or len(data) < 8 or data[0] != SEQUENCE:
        return Verdict.NO
    try:
        version = read_int(expect(expect(Cursor(data), SEQUENCE, "snmp"), INTEGER, "v"))
    except ParseError:
        return Verdict.NO
    return Verdict.YES if version in (0, 1, 3) else Verdict.NO


class SnmpParser(Parser):
    name = "snmp"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        msg = expect(Cursor(data), SEQUENCE, "snmp message")
        version = read_int(expect(msg, INTEGER, "snmp version"), "snmp version")
        self.sink.add("fpc.snmp.version", version + 1 if version < 2 else version)
        if version == 3:
            self._on_v3(msg)
            return
        community = expect(msg, OCTET_STRING, "snmp community")
        self.sink.add("fpc.snmp.community", read_text(community))
        self._on_pdu(msg)

    def _on_v3(self, msg: Cursor) -> None:
        header = expect(msg, SEQUENCE, "snmp v3 header")
        expect(header, INTEGER, "snmp msgID")
        expect(header, INTEGER, "snmp msgMaxSize")
        flags = expect(header, OCTET_STRING, "snmp msgFlags").take(1, "snmp flags")
        self.sink.add("fpc.snmp.security_level", SECURITY_LEVELS[flags[0] & 3])
        usm = expect(msg, OCTET_STRING, "snmp security parameters")
        if usm.remaining:
            # Some agents overstate this SEQUENCE's length; its OCTET STRING
            # wrapper bounds it anyway.
            params = expect(usm, SEQUENCE, "snmp usm", clamp=True)
            engine = expect(params, OCTET_STRING, "snmp engine id")
            if engine.remaining:
                self.sink.add("fpc.snmp.engine_id", engine.take(engine.remaining).hex())
            expect(params, INTEGER, "snmp engine boots")
            expect(params, INTEGER, "snmp engine time")
            user = read_text(expect(params, OCTET_STRING, "snmp user name"))
            if user:
                self.sink.add("fpc.snmp.user", user)
        if flags[0] & 2 == 0:  # not encrypted: the scoped PDU is readable
            scoped = expect(msg, SEQUENCE, "snmp scoped pdu")
            expect(scoped, OCTET_STRING, "snmp context engine id")
            expect(scoped, OCTET_STRING, "snmp context name")
            self._on_pdu(scoped)

    def _on_pdu(self, c: Cursor) -> None:
        tag, pdu = read_tlv(c, "snmp pdu")
        kind = tag & 0x1F
        if tag & 0xE0 != 0xA0 or kind >= len(PDU_TYPES):
            raise ParseError(f"snmp pdu tag 0x{tag:02x} is not a PDU")
        self.sink.add("fpc.snmp.pdu_type", PDU_TYPES[kind])
        if kind == TRAP_V1:
            return  # TODO: SNMPv1 Trap-PDU fields (enterprise, agent) are not read
        expect(pdu, INTEGER, "snmp request id")
        error = read_int(expect(pdu, INTEGER, "snmp error status"), "snmp error")
        if error:
            status = ERRORS[error] if 0 < error < len(ERRORS) else str(error)
            self.sink.add("fpc.snmp.error_status", status)
        expect(pdu, INTEGER, "snmp error index")
        bindings = expect(pdu, SEQUENCE, "snmp variable bindings")
        for _ in range(MAX_VARBINDS):
            if not bindings.remaining:
                break
            binding = expect(bindings, SEQUENCE, "snmp variable binding")
            name = expect(binding, OID, "snmp variable name")
            self.sink.add("fpc.snmp.oid", oid_text(name.take(name.remaining)))


register(
    ParserSpec(
        name="snmp",
        transports=frozenset({"udp"}),
        ports=frozenset({161, 162}),
        classify=classify,
        create=SnmpParser,
    )
)
