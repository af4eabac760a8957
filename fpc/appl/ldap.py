"""LDAP parser (TCP 389/3268): bind names and methods, search bases, StartTLS.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the DN
and method of each bind request (`fpc.ldap.bind_dn`, `fpc.ldap.auth_type`:
anonymous, simple, sasl, ntlm), SASL mechanisms, search base DNs, and the
NTLMSSP fields of NTLM binds (`fpc.appl.ntlm`). An accepted StartTLS hands
the session to TLS.

Layout (RFC 4511 section 4, BER; Microsoft's "sicily" NTLM bind [MS-ADTS])::

    LDAPMessage  SEQUENCE { messageID INTEGER, protocolOp, [0] controls }
    BindRequest  [APPLICATION 0] { version INTEGER, name OCTET STRING,
                 auth: [0] simple | [3] sasl { mechanism, credentials }
                       | [10] sicily negotiate | [11] sicily response }
    BindResponse [APPLICATION 1] { resultCode, matchedDN, message, [7] creds }
    SearchRequest [APPLICATION 3] { baseObject OCTET STRING, ... }
    ExtendedReq  [APPLICATION 23] { [0] requestName OID text, [1] value }
    ExtendedResp [APPLICATION 24] { resultCode ENUMERATED, ... }
"""

from __future__ import annotations

from fpc.appl import ntlm
from fpc.appl.ber import ENUMERATED, INTEGER, OCTET_STRING, expect, read_tlv
from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

# TODO: connectionless LDAP (CLDAP, UDP 389, used by Windows domain locators)
# is not parsed; such sessions get no LDAP fields.
BIND_REQUEST, BIND_RESPONSE, SEARCH_REQUEST = 0x60, 0x61, 0x63
EXTENDED_REQUEST, EXTENDED_RESPONSE = 0x77, 0x78
AUTH_SIMPLE, AUTH_SASL = 0x80, 0xA3
SICILY_NEGOTIATE, SICILY_RESPONSE, SASL_CREDS = 0x8A, 0x8B, 0x87
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
MAX_MESSAGE = 1 << 20  # an LDAP message longer than this is refused
MAX_MESSAGES = 256  # messages read per direction
_CLIENT_OPS = frozenset({BIND_REQUEST, SEARCH_REQUEST, EXTENDED_REQUEST})


def _message_size(data: bytes) -> int:
    """Bytes of the BER SEQUENCE at the start of `data`; -1 if not yet known."""
    if len(data) < 2:
        return -1
    if data[1] < 0x80:
        return 2 + data[1]
    count = data[1] & 0x7F
    if not 0 < count <= 4:
        raise ParseError(f"ldap message length field of {count} bytes")
    if len(data) < 2 + count:
        return -1
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A SEQUENCE holding a message id and an application-class operation."""
    if not data or data[0] != 0x30:
        return Verdict.NO
    try:
        size = _message_size(data)
        if size < 0 or len(data) < min(size, 16):
            return Verdict.MORE
        msg = Cursor(data, 0, size)
        body = expect(msg, 0x30, "ldap message")
        expect(body, INTEGER, "ldap message id")
        op = body.u8("ldap operation")
    except ParseError:
        return Verdict.NO
    if op & 0xC0 != 0x40:
        return Verdict.NO
    ok = port_hint or (direction == 0 and op in _CLIENT_OPS)
    return Verdict.YES if ok else Verdict.NO


class LdapParser(Parser):
    name = "ldap"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._messages = [0, 0]
        self._starttls = False  # a StartTLS request waits for its response
        self._sasl = False  # a SASL bind was seen: a security layer may follow

    def feed(self, direction: int, data: bytes) -> None:
        if self._messages[direction] >= MAX_MESSAGES:
            return  # this side is read far enough
        buf = self._bufs[direction]
        buf.add(data)
        while self.handoff is None and self._messages[direction] < MAX_MESSAGES:
            if self._sasl and buf.peek(1) not in (b"", b"\x30"):
                # A SASL security layer (GSSAPI, GSS-SPNEGO) wraps what
                # follows the bind: sealed, and not LDAP to read any more.
                self.done = True
                return
            size = _message_size(buf.peek(6))
            if size > MAX_MESSAGE:
                raise ParseError(f"ldap message of {size} bytes (max {MAX_MESSAGE})")
            if size < 0 or len(buf) < size:
                break
            msg = buf.take(size)
            self._messages[direction] += 1
            self._on_message(direction, msg, buf)
        self.done = self.done or min(self._messages) >= MAX_MESSAGES

    def _on_message(self, direction: int, msg: bytes, rest: ByteBuffer) -> None:
        body = expect(Cursor(msg), 0x30, "ldap message")
        expect(body, INTEGER, "ldap message id")
        op, value = read_tlv(body, "ldap operation")
        if op == BIND_REQUEST:
            self._on_bind(value)
        elif op == BIND_RESPONSE:
            self._on_bind_response(value)
        elif op == SEARCH_REQUEST:
            base = expect(value, OCTET_STRING, "ldap search base")
            self._add_dn("fpc.ldap.search_base", base)
        elif op == EXTENDED_REQUEST:
            tag, name = read_tlv(value, "ldap extended request name")
            self._starttls = tag == 0x80 and name.take(name.remaining) == STARTTLS_OID
        elif op == EXTENDED_RESPONSE and self._starttls and direction == 1:
            code = expect(value, ENUMERATED, "ldap result code")
            self._starttls = False
            if code.take(code.remaining) == b"\x00":  # success: TLS follows
                self.handoff = (self._bufs[0].rest(), rest.rest())
                self.done = True

    def _on_bind(self, value: Cursor) -> None:
        expect(value, INTEGER, "ldap bind version")
        self._add_dn("fpc.ldap.bind_dn", expect(value, OCTET_STRING, "ldap bind dn"))
        tag, auth = read_tlv(value, "ldap bind authentication")
        if tag == AUTH_SIMPLE:
            kind = "simple" if auth.remaining else "anonymous"
        elif tag == AUTH_SASL:
            kind = "sasl"
            self._sasl = True
            mechanism = expect(auth, OCTET_STRING, "ldap sasl mechanism")
            text = mechanism.take(mechanism.remaining).decode("ascii", "replace")
            self.sink.add("fpc.ldap.sasl_mechanism", text)
            self._scan_ntlm(auth)
        elif tag in (SICILY_NEGOTIATE, SICILY_RESPONSE):
            kind = "ntlm"
            self._scan_ntlm(auth)
        else:
            kind = f"0x{tag:02x}"
        self.sink.add("fpc.ldap.auth_type", kind)

    def _on_bind_response(self, value: Cursor) -> None:
        expect(value, ENUMERATED, "ldap result code")
        # A Sicily (MS-ADTS) NTLM bind carries the challenge in matchedDN.
        self._scan_ntlm(expect(value, OCTET_STRING, "ldap matched dn"))
        expect(value, OCTET_STRING, "ldap diagnostic message")
        self._scan_ntlm(value)  # [7] serverSaslCreds: an NTLM challenge

    def _scan_ntlm(self, value: Cursor) -> None:
        rest = value.take(value.remaining, "ldap credentials")
        if ntlm.SIGNATURE in rest:
            ntlm.scan(self.sink, rest)

    def _add_dn(self, field: str, dn: Cursor) -> None:
        text = dn.take(dn.remaining, "ldap dn").decode("utf-8", "backslashreplace")
        if text:
            self.sink.add(field, text)


register(
    ParserSpec(
        name="ldap",
        transports=frozenset({"tcp"}),
        ports=frozenset({389, 3268}),
        classify=classify,
        create=LdapParser,
    )
)
