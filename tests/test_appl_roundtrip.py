"""Generated sessions: the parsers must report exactly what was generated.

Hypothesis builds HTTP exchanges (keep-alive, Content-Length and chunked
bodies that contain decoy messages), DNS messages (with dpkt) and TLS
ClientHellos, cuts them into random TCP segments, and checks the fields
against the generator's own values.
"""

from __future__ import annotations

import hashlib
import struct

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st

from fpc.appl import AppState, new_app_state
from fpc.appl.stream import TCP_SYN

METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]
DECOY = b"GET /decoy HTTP/1.1\r\n\r\nHTTP/1.1 599 Decoy\r\n\r\n"
token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1,
                max_size=12)  # fmt: skip


def _feed_stream(state: AppState, direction: int, data: bytes, cuts: list[int]) -> None:
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    seq = 1000 * (direction + 1)
    state.feed(direction, b"", seq - 1, TCP_SYN)
    for a, b in zip(edges, edges[1:], strict=False):
        state.feed(direction, data[a:b], seq + a, 0)


def _body(data: bytes, chunked: bool, sizes: list[int]) -> tuple[bytes, bytes]:
    """(headers, body) framing `data` by Content-Length or in chunks."""
    if not chunked:
        return b"Content-Length: %d\r\n" % len(data), data
    out, pos = b"", 0
    for size in [*sizes, len(data)]:
        piece = data[pos : pos + max(size, 1)]
        if piece:
            out += b"%x\r\n%s\r\n" % (len(piece), piece)
        pos += len(piece)
    return b"Transfer-Encoding: chunked\r\n", out + b"0\r\n\r\n"


exchange = st.tuples(
    st.sampled_from(METHODS),
    st.lists(token, min_size=1, max_size=3),  # path segments
    token,  # host
    st.integers(min_value=100, max_value=599).filter(lambda s: s // 100 != 1),
    st.binary(max_size=200),  # response body
    st.booleans(),  # chunked
    st.lists(st.integers(min_value=1, max_value=50), max_size=4),  # chunk sizes
)


@settings(max_examples=150, deadline=None)
@given(
    exchanges=st.lists(exchange, min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=30),
)
def test_roundtrip_http_keepalive_exchanges(exchanges: list, cuts: list[int]) -> None:
    requests, responses = b"", b""
    for method, parts, host, status, body, chunked, sizes in exchanges:
        path = "/" + "/".join(parts)
        head, data = _body(DECOY + body, chunked, sizes)
        requests += f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n".encode()
        requests += b"Content-Length: %d\r\n\r\n" % len(DECOY) + DECOY
        if status in (204, 304):
            head, data = b"", b""
        responses += b"HTTP/1.1 %d X\r\n%s\r\n%s" % (status, head, data)
    state = new_app_state("tcp", 50000, 8080)
    _feed_stream(state, 0, requests, cuts)
    _feed_stream(state, 1, responses, cuts)
    fields = state.fields()

    def distinct(values: list) -> list:
        return list(dict.fromkeys(values))

    assert state.errors == 0
    assert fields["http.request.method"] == distinct([e[0] for e in exchanges])
    paths = ["/" + "/".join(e[1]) for e in exchanges]
    assert fields["url.path"] == distinct(paths)
    assert fields["url.domain"] == distinct([e[2] for e in exchanges])
    assert fields["http.response.status_code"] == distinct([e[3] for e in exchanges])


dns_name = st.lists(token, min_size=1, max_size=4).map(".".join)


@settings(max_examples=150, deadline=None)
@given(
    qname=dns_name,
    qtype=st.sampled_from([dpkt.dns.DNS_A, dpkt.dns.DNS_AAAA, dpkt.dns.DNS_MX]),
    cnames=st.lists(dns_name, max_size=3),
    addrs=st.lists(st.binary(min_size=4, max_size=4), max_size=4),
    rcode=st.sampled_from([0, 2, 3, 5]),
    over_tcp=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=8),
)
def test_roundtrip_dns_messages_built_by_dpkt(
    qname: str,
    qtype: int,
    cnames: list[str],
    addrs: list[bytes],
    rcode: int,
    over_tcp: bool,
    cuts: list[int],
) -> None:
    msg = dpkt.dns.DNS(id=9, op=dpkt.dns.DNS_RD | dpkt.dns.DNS_RA)
    msg.qr, msg.rcode = dpkt.dns.DNS_R, rcode
    msg.qd = [dpkt.dns.DNS.Q(name=qname, type=qtype)]
    answers = []
    for target in cnames:
        rr = dpkt.dns.DNS.RR(name=qname, type=dpkt.dns.DNS_CNAME)
        rr.cname = target
        answers.append(rr)
    for addr in addrs:
        rr = dpkt.dns.DNS.RR(name=qname, type=dpkt.dns.DNS_A)
        rr.ip = addr
        answers.append(rr)
    msg.an = answers
    wire = bytes(msg)
    if over_tcp:
        state = new_app_state("tcp", 50000, 53)
        _feed_stream(state, 1, struct.pack("!H", len(wire)) + wire, cuts)
    else:
        state = new_app_state("udp", 50000, 53)
        state.feed(1, wire, None, 0)
    ips = [".".join(str(b) for b in a) for a in addrs]
    fields = state.fields()
    assert state.errors == 0
    assert fields["dns.question.name"] == [qname]
    assert fields["dns.response_code"] == [
        {0: "NOERROR", 2: "SERVFAIL", 3: "NXDOMAIN", 5: "REFUSED"}[rcode]
    ]
    expect_data = list(dict.fromkeys(cnames + ips))
    assert fields.get("dns.answers.data", []) == expect_data
    assert fields.get("dns.resolved_ip", []) == list(dict.fromkeys(ips))


GREASE = [0x0A0A + 0x1010 * i for i in range(16)]
u16 = st.integers(min_value=0, max_value=0xFFFF)


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


@settings(max_examples=150, deadline=None)
@given(
    ciphers=st.lists(st.one_of(u16, st.sampled_from(GREASE)), min_size=1, max_size=40),
    other_exts=st.lists(
        st.one_of(
            st.sampled_from([5, 13, 16, 23, 35, 43, 45, 51]), st.sampled_from(GREASE)
        ),
        max_size=8,
        unique=True,
    ),  # fmt: skip
    groups=st.lists(st.one_of(u16, st.sampled_from(GREASE)), max_size=6),
    formats=st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=3),
    sni=dns_name,
    records=st.integers(min_value=1, max_value=5),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
)
def test_roundtrip_tls_client_hello_ja3(
    ciphers: list[int],
    other_exts: list[int],
    groups: list[int],
    formats: list[int],
    sni: str,
    records: int,
    cuts: list[int],
) -> None:
    name = struct.pack("!BH", 0, len(sni)) + sni.encode()
    exts = [(0, struct.pack("!H", len(name)) + name)]
    exts.append((10, struct.pack(f"!H{len(groups)}H", 2 * len(groups), *groups)))
    exts.append((11, bytes([len(formats), *formats])))
    exts += [(t, b"") for t in other_exts]
    block = b"".join(_ext(t, b) for t, b in exts)
    body = (
        b"\x03\x03" + bytes(32) + b"\x00"
        + struct.pack(f"!H{len(ciphers)}H", 2 * len(ciphers), *ciphers)
        + b"\x01\x00" + struct.pack("!H", len(block)) + block
    )  # fmt: skip
    msg = b"\x01" + len(body).to_bytes(3, "big") + body
    step = -(-len(msg) // records)
    wire = b"".join(
        b"\x16\x03\x01" + struct.pack("!H", len(msg[i : i + step])) + msg[i : i + step]
        for i in range(0, len(msg), step)
    )
    state = new_app_state("tcp", 50000, 443)
    _feed_stream(state, 0, wire, cuts)

    def dash(values: list[int]) -> str:
        return "-".join(str(v) for v in values if v not in GREASE)

    ja3 = ",".join(
        ["771", dash(ciphers), dash([t for t, _ in exts]), dash(groups), dash(formats)]
    )
    assert state.errors == 0
    assert state.fields()["tls.client.ja3"] == [hashlib.md5(ja3.encode()).hexdigest()]
    assert state.fields()["tls.client.server_name"] == [sni]
