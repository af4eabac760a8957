"""Kerberos 5 parser (UDP and TCP 88): realm, principals, etypes, errors.

In: datagrams, or in-order stream bytes with a 4-byte length before each
message, from `fpc.appl.state`. Out: the message types, realms, client and
service principals, the encryption types a client offers, and the error
codes of KRB-ERROR replies, in `fpc.krb5.*`.

Layout (RFC 4120 section 5, DER; [n] are context tags, APPLICATION tags
pick the message)::

    AS-REQ [10], TGS-REQ [12]  SEQUENCE { [1] pvno, [2] msg-type,
        [3] padata, [4] req-body SEQUENCE { [0] options, [1] cname,
        [2] realm, [3] sname, ..., [8] etype SEQUENCE OF INTEGER } }
    AS-REP [11], TGS-REP [13]  SEQUENCE { [0] pvno, [1] msg-type,
        [2] padata, [3] crealm, [4] cname, [5] ticket, [6] enc-part }
    KRB-ERROR [30]  SEQUENCE { ..., [6] error-code, [7] crealm, [8] cname,
        [9] realm, [10] sname, ... }
    PrincipalName  SEQUENCE { [0] name-type, [1] SEQUENCE OF GeneralString }
"""

from __future__ import annotations

from fpc.appl.ber import SEQUENCE, expect, read_int, read_text, read_tlv
from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

AS_REQ, AS_REP, TGS_REQ, TGS_REP, KRB_ERROR = 10, 11, 12, 13, 30
MESSAGE_TYPES = {AS_REQ: "AS-REQ", AS_REP: "AS-REP", TGS_REQ: "TGS-REQ",
                 TGS_REP: "TGS-REP", KRB_ERROR: "KRB-ERROR"}  # fmt: skip
ETYPES = {
    1: "des-cbc-crc", 2: "des-cbc-md4", 3: "des-cbc-md5", 16: "des3-cbc-sha1-kd",
    17: "aes128-cts-hmac-sha1-96", 18: "aes256-cts-hmac-sha1-96",
    19: "aes128-cts-hmac-sha256-128", 20: "aes256-cts-hmac-sha384-192",
    23: "rc4-hmac", 24: "rc4-hmac-exp", 25: "camellia128-cts-cmac",
    26: "camellia256-cts-cmac",
}  # fmt: skip
ERRORS = {
    6: "KDC_ERR_C_PRINCIPAL_UNKNOWN", 7: "KDC_ERR_S_PRINCIPAL_UNKNOWN",
    12: "KDC_ERR_POLICY", 14: "KDC_ERR_ETYPE_NOSUPP", 18: "KDC_ERR_CLIENT_REVOKED",
    23: "KDC_ERR_KEY_EXPIRED", 24: "KDC_ERR_PREAUTH_FAILED",
    25: "KDC_ERR_PREAUTH_REQUIRED", 31: "KRB_AP_ERR_BAD_INTEGRITY",
    32: "KRB_AP_ERR_TKT_EXPIRED", 37: "KRB_AP_ERR_SKEW", 41: "KRB_AP_ERR_MODIFIED",
    52: "KRB_ERR_RESPONSE_TOO_BIG", 68: "KDC_ERR_WRONG_REALM",
}  # fmt: skip
MAX_MESSAGE = 64 * 1024
MAX_MESSAGES = 64
MAX_NAME_PARTS = 8
MAX_ETYPES = 32
# Where the realm, client and service names sit in each message kind.
_REQ_BODY = {"realm": 2, "cname": 1, "sname": 3}
_REP = {"realm": 3, "cname": 4}
_ERR = {"realm": 9, "cname": 8, "sname": 10}


def _app_tag(data: bytes) -> int:
    return data[0] & 0x1F if data and data[0] & 0xE0 == 0x60 else -1


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """An APPLICATION-tagged Kerberos message (TCP: after its length)."""
    if transport == "tcp":
        if len(data) < 5:
            return Verdict.MORE
        data = data[4:]
    if _app_tag(data) not in MESSAGE_TYPES:
        return Verdict.NO
    try:
        _, body = read_tlv(Cursor(data), "krb5 message")
        expect(body, SEQUENCE, "krb5 message sequence")
    except ParseError:
        return Verdict.MORE if transport == "tcp" and port_hint else Verdict.NO
    return Verdict.YES if port_hint or direction == 0 else Verdict.NO


def _context(seq: Cursor) -> dict[int, Cursor]:
    """The [n] fields of a SEQUENCE by n."""
    out = {}
    while seq.remaining:
        tag, value = read_tlv(seq, "krb5 field")
        if tag & 0xE0 != 0xA0:
            raise ParseError(f"krb5 field tag 0x{tag:02x} is not context-specific")
        out[tag & 0x1F] = value
    return out


def _principal(value: Cursor) -> str:
    fields = _context(expect(value, SEQUENCE, "krb5 principal"))
    if 1 not in fields:
        raise ParseError("krb5 principal without name-string")
    names = expect(fields[1], SEQUENCE, "krb5 name-string")
    parts: list[str] = []
    while names.remaining and len(parts) < MAX_NAME_PARTS:
        _, part = read_tlv(names, "krb5 name part")
        parts.append(read_text(part))
    return "/".join(parts)


def _frame_len(head: bytes) -> int:
    """Kerberos over TCP: a 4-byte big-endian length, then the message."""
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        raise ParseError(f"krb5 over tcp message of {size} bytes")
    return 4 + size


class Krb5Parser(Parser):
    name = "krb5"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        if self.transport != "tcp":
            self._on_message(data)
            return
        buf = self._bufs[direction]
        buf.add(data)
        while not self.done and (frame := buf.next_frame(4, _frame_len)) is not None:
            self._on_message(frame[4:])

    def _on_message(self, msg: bytes) -> None:
        self._messages += 1
        self.done = self._messages >= MAX_MESSAGES
        kind = _app_tag(msg)
        if kind not in MESSAGE_TYPES:
            raise ParseError(f"krb5 message with application tag {kind}")
        self.sink.add("fpc.krb5.msg_type", MESSAGE_TYPES[kind])
        _, outer = read_tlv(Cursor(msg), "krb5 message")
        fields = _context(expect(outer, SEQUENCE, "krb5 message sequence"))
        if kind in (AS_REQ, TGS_REQ) and 4 in fields:
            body = _context(expect(fields[4], SEQUENCE, "krb5 req-body"))
            self._add_names(body, _REQ_BODY)
            if 8 in body:
                self._add_etypes(body[8])
        elif kind in (AS_REP, TGS_REP):
            self._add_names(fields, _REP)
        elif kind == KRB_ERROR:
            self._add_names(fields, _ERR)
            if 6 in fields:
                code = read_int(expect(fields[6], 0x02, "krb5 error-code"))
                self.sink.add("fpc.krb5.error", ERRORS.get(code, str(code)))

    def _add_names(self, fields: dict[int, Cursor], where: dict[str, int]) -> None:
        for field, index in where.items():
            if index not in fields:
                continue
            if field == "realm":
                _, realm = read_tlv(fields[index], "krb5 realm")
                self.sink.add("fpc.krb5.realm", read_text(realm))
            else:
                self.sink.add(f"fpc.krb5.{field}", _principal(fields[index]))

    def _add_etypes(self, value: Cursor) -> None:
        etypes = expect(value, SEQUENCE, "krb5 etype list")
        for _ in range(MAX_ETYPES):
            if not etypes.remaining:
                break
            etype = read_int(expect(etypes, 0x02, "krb5 etype"))
            self.sink.add("fpc.krb5.etype", ETYPES.get(etype, str(etype)))


register(
    ParserSpec(
        name="krb5",
        transports=frozenset({"udp", "tcp"}),
        ports=frozenset({88}),
        classify=classify,
        create=Krb5Parser,
    )
)
