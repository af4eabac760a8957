"""DNS parser, over UDP (one message per datagram) and TCP (length-prefixed).

In: datagrams or in-order stream bytes from `fpc.appl.state`. Out: query
names and types, response codes and the data of the records of every section
(A/AAAA addresses, CNAME/NS/PTR/MX/DNAME names, TXT text, CAA properties):
the answer section in `dns.answers.data`, the others in
`fpc.dns.authority.data` and `fpc.dns.additional.data`.

Message layout (RFC 1035 section 4.1; over TCP each message is preceded by
its length as a 16-bit number, RFC 1035 section 4.2.2)::

    header   id(16) flags(16) qdcount(16) ancount(16) nscount(16) arcount(16)
             flags = QR(1) opcode(4) AA TC RD RA Z AD CD rcode(4)
    question qname  qtype(16) qclass(16)
    record   name   type(16) class(16) ttl(32) rdlength(16) rdata
    name     *( len(8) label ) 0   |  ... 11pppppp pppppppp (pointer to offset)
"""

from __future__ import annotations

import ipaddress
import struct

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

DNS_HDR_LEN = 12
MAX_NAME_LEN = 255  # RFC 1035 section 2.3.4, in wire bytes
MAX_POINTERS = 64  # compression pointers followed in one name
MAX_QUESTIONS = 16
MAX_RECORDS = 256  # records read per message (all sections); the rest are skipped
MAX_MESSAGES = 256  # messages parsed per session before the parser stops
MAX_TCP_MESSAGE = 65535

_OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}
_OPCODES_KNOWN = frozenset(_OPCODES)
# Header flag bits (RFC 1035, RFC 4035) as ECS dns.header_flags names them.
_FLAG_BITS = (
    (0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"),
    (0x0020, "AD"), (0x0010, "CD"),
)  # fmt: skip
_TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX",
    16: "TXT", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 39: "DNAME",
    41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3",
    52: "TLSA", 64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR", 252: "AXFR",
    255: "ANY", 257: "CAA",
}  # fmt: skip
_RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
    5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
    10: "NOTZONE",
}  # fmt: skip
_NAME_TYPES = frozenset({2, 5, 12, 39})  # rdata is one domain name
TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_PTR, TYPE_MX = 1, 28, 5, 12, 15
TYPE_TXT, TYPE_CAA = 16, 257
ANSWER, AUTHORITY, ADDITIONAL = range(3)  # record sections, in message order
SECTION_FIELDS = (
    "dns.answers.data",
    "fpc.dns.authority.data",
    "fpc.dns.additional.data",
)
OPCODE_UPDATE = 5  # RFC 2136
CLASS_IN, CLASS_ANY = 1, 255


def type_name(qtype: int) -> str:
    return _TYPES.get(qtype, f"TYPE{qtype}")  # RFC 3597 spelling when unknown


def read_name(msg: bytes, pos: int) -> tuple[str, int]:
    """The name at `pos` (following compression pointers) and the offset after it.

    Each pointer must go strictly below the lowest offset read so far, so a
    crafted pointer chain cannot loop.
    """
    labels: list[str] = []
    wire_len = 1
    floor = pos
    after: int | None = None
    for _ in range(MAX_NAME_LEN + MAX_POINTERS):
        c = Cursor(msg, pos)
        n = c.u8("dns label length")
        if n == 0:
            return ".".join(labels) or ".", after if after is not None else c.pos
        if n & 0xC0 == 0xC0:
            target = ((n & 0x3F) << 8) | c.u8("dns pointer")
            if target >= floor:
                raise ParseError(f"dns name pointer at offset {pos} loops to {target}")
            if after is None:
                after = c.pos
            floor = pos = target
            continue
        if n & 0xC0:
            raise ParseError(f"dns label type 0x{n & 0xC0:02x} at offset {pos}")
        wire_len += n + 1
        if wire_len > MAX_NAME_LEN:
            raise ParseError(f"dns name at offset {pos} longer than 255 bytes")
        labels.append(_label_text(c.take(n, "dns label")))
        pos = c.pos
    raise ParseError(f"dns name at offset {pos} has too many labels or pointers")


_ESCAPES = {9: "\\t", 10: "\\n", 13: "\\r"}


def _label_text(label: bytes) -> str:
    """Lowercase printable ASCII (RFC 4343: case does not matter); other bytes
    and '.', '\\', '"' as \\DDD, tab/CR/LF as \\t, \\r, \\n (as ECS asks)."""
    if label.isalnum() or all(0x21 <= b <= 0x7E and b not in b'.\\"' for b in label):
        return label.decode("ascii").lower()
    return "".join(
        chr(b).lower()
        if 0x21 <= b <= 0x7E and b not in b'.\\"'
        else _ESCAPES.get(b, f"\\{b:03d}")
        for b in label
    )


class DnsMessage:
    """The parts of one DNS message that become SPI fields."""

    __slots__ = (
        "is_response", "opcode", "rcode", "flags", "questions", "records"
    )  # fmt: skip

    def __init__(self) -> None:
        self.is_response = False
        self.opcode = 0
        self.rcode = 0
        self.flags = 0
        self.questions: list[tuple[str, int, int]] = []  # name, type, class
        # (section, owner name, type, data) of each record with data fpc decodes
        self.records: list[tuple[int, str, int, str]] = []

    def resolved_ips(self) -> list[str]:
        """Answer addresses of a question's name or of a CNAME on its chain."""
        names = {q[0] for q in self.questions}
        ips = []
        for section, owner, rtype, data in self.records:
            if section != ANSWER:
                continue
            if rtype == TYPE_CNAME and owner in names:
                names.add(data)
            elif rtype in (TYPE_A, TYPE_AAAA) and owner in names:
                ips.append(data)
        return ips


# The message parsed last and what it held: a datagram that classify said YES
# to is fed to the new parser next, which would parse the same bytes again.
# Parsing depends on the bytes alone and nobody changes a parsed message.
_last_parsed: tuple[bytes, DnsMessage] = (b"", DnsMessage())


def _parse_reusing(msg: bytes) -> DnsMessage:
    """parse_message(msg), without a second parse of the same bytes in a row."""
    global _last_parsed
    last = _last_parsed
    if msg == last[0] and msg:
        return last[1]
    parsed = parse_message(msg)
    _last_parsed = (msg, parsed)
    return parsed


def parse_message(msg: bytes) -> DnsMessage:
    c = Cursor(msg)
    c.skip(2, "dns id")
    flags = c.u16("dns flags")
    qdcount, ancount = c.u16("dns qdcount"), c.u16("dns ancount")
    nscount, arcount = c.u16("dns nscount"), c.u16("dns arcount")
    out = DnsMessage()
    out.is_response = bool(flags & 0x8000)
    out.opcode = (flags >> 11) & 0xF
    out.rcode = flags & 0xF
    out.flags = flags
    if qdcount > MAX_QUESTIONS:
        raise ParseError(f"dns qdcount {qdcount} is implausible (max {MAX_QUESTIONS})")
    for _ in range(qdcount):
        name, c.pos = read_name(msg, c.pos)
        qtype = c.u16("dns qtype")
        out.questions.append((name, qtype, c.u16("dns qclass")))
    if out.opcode == OPCODE_UPDATE:
        return out  # its second section holds prerequisites, not answers
    budget = MAX_RECORDS
    for section, count in enumerate((ancount, nscount, arcount)):
        for _ in range(min(count, budget)):
            _read_record(msg, c, out, section)
        budget -= min(count, budget)
    return out


def _read_record(msg: bytes, c: Cursor, out: DnsMessage, section: int) -> None:
    owner, c.pos = read_name(msg, c.pos)
    rtype = c.u16("dns type")
    c.skip(6, "dns class/ttl")
    rdata = c.sub(c.u16("dns rdlength"), "dns rdata")
    data = _rdata_text(msg, rtype, rdata)
    if data is not None:
        out.records.append((section, owner, rtype, data))


def _rdata_text(msg: bytes, rtype: int, rdata: Cursor) -> str | None:
    """The data of a record as text, None for the types fpc does not decode."""
    if rtype in (TYPE_A, TYPE_AAAA):
        want = 4 if rtype == TYPE_A else 16
        if rdata.remaining != want:
            raise ParseError(
                f"dns {type_name(rtype)} rdata has {rdata.remaining} bytes"
            )
        return str(ipaddress.ip_address(rdata.take(want)))
    if rtype in _NAME_TYPES or rtype == TYPE_MX:
        if rtype == TYPE_MX:
            rdata.skip(2, "dns mx preference")
        name, end = read_name(msg, rdata.pos)
        if end > rdata.end:
            raise ParseError(f"dns {type_name(rtype)} name runs past its rdata")
        return name
    if rtype == TYPE_TXT:
        return _txt_text(rdata)
    if rtype == TYPE_CAA:
        flags, tag = rdata.u8("dns caa flags"), rdata.take(rdata.u8("dns caa tag"))
        value = rdata.take(rdata.remaining, "dns caa value")
        return f"{flags} {_text(tag)} {_text(value)}"
    return None


def _txt_text(rdata: Cursor) -> str:
    """The character-strings of a TXT record joined (RFC 7208 3.3 reads SPF so)."""
    parts = []
    while rdata.remaining:
        parts.append(rdata.take(rdata.u8("dns txt length"), "dns txt string"))
    return _text(b"".join(parts))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "backslashreplace")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A header with sane counts and a question that parses; strict off port."""
    if transport == "tcp":
        size = int.from_bytes(data[:2], "big")
        if len(data) >= 2 and size < DNS_HDR_LEN:
            return Verdict.NO
        if len(data) < 2 + DNS_HDR_LEN:
            return Verdict.MORE
        if len(data) < 2 + size:
            return _classify_partial(data[2:], port_hint)
        data = data[2 : 2 + size]
    try:
        msg = _parse_reusing(data)
    except ParseError:
        return Verdict.NO
    if msg.opcode not in _OPCODES_KNOWN:
        return Verdict.NO
    if port_hint:
        return Verdict.YES
    return Verdict.YES if _plausible_off_port(msg) else Verdict.NO


def _plausible_off_port(msg: DnsMessage) -> bool:
    """One question of a known type and class IN/ANY (NetBIOS names fail)."""
    if len(msg.questions) != 1 or (msg.rcode and not msg.is_response):
        return False
    _, qtype, qclass = msg.questions[0]
    return qtype in _TYPES and qclass in (CLASS_IN, CLASS_ANY)


def _classify_partial(msg: bytes, port_hint: bool) -> Verdict:
    """A TCP message not complete yet: decide on its header alone."""
    qdcount, ancount, nscount, arcount = struct.unpack_from("!4H", msg, 4)
    opcode = (msg[2] >> 3) & 0xF
    if opcode not in _OPCODES_KNOWN or qdcount > MAX_QUESTIONS:
        return Verdict.NO
    if port_hint:
        return Verdict.YES
    if qdcount != 1 or max(ancount, nscount, arcount) > MAX_RECORDS:
        return Verdict.NO
    return Verdict.MORE  # plausible: decide once the whole message is here


class DnsParser(Parser):
    name = "dns"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._messages = 0

    def feed(self, direction: int, data: bytes) -> None:
        if self.transport != "tcp":
            self._on_message(data)
            return
        buf = self._bufs[direction] + data
        while len(buf) >= 2 and not self.done:
            size = int.from_bytes(buf[:2], "big")
            if size < DNS_HDR_LEN:
                raise ParseError(f"dns over tcp message length {size} is too short")
            if len(buf) < 2 + size:
                break
            self._on_message(buf[2 : 2 + size])
            buf = buf[2 + size :]
        self._bufs[direction] = buf

    def end(self, direction: int) -> None:
        self._bufs[direction] = b""

    def _on_message(self, msg: bytes) -> None:
        parsed = _parse_reusing(msg)
        add = self.sink.add
        for name, qtype, _qclass in parsed.questions:
            add("dns.question.name", name)
            add("dns.question.type", type_name(qtype))
        add("dns.op_code", _OPCODES.get(parsed.opcode, f"OPCODE{parsed.opcode}"))
        if parsed.is_response:  # a query's RD, AD and CD come back in its response
            for bit, flag in _FLAG_BITS:
                if parsed.flags & bit:
                    add("dns.header_flags", flag)
            add("dns.response_code", _RCODES.get(parsed.rcode, f"RCODE{parsed.rcode}"))
        for section, _owner, rtype, data in parsed.records:
            add(SECTION_FIELDS[section], data)
            if rtype == TYPE_PTR:
                add("fpc.dns.ptr", data)
        for ip in parsed.resolved_ips():
            add("dns.resolved_ip", ip)
        self._messages += 1
        if self._messages >= MAX_MESSAGES:
            self.done = True


register(
    ParserSpec(
        name="dns",
        transports=frozenset({"udp", "tcp"}),
        ports=frozenset({53, 5353, 5355}),
        classify=classify,
        create=DnsParser,
    )
)
