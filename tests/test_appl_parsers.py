"""App-layer parsers on hand-built sessions: framing, splitting, bounds.

Expected values come from the messages the tests build, never from the
parsers' own output; DNS messages are built with dpkt.
"""

from __future__ import annotations

import hashlib
import struct

import dpkt
import hpack
import pytest
from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import AppState, new_app_state, registered_names
from fpc.appl.fields import APP_FIELDS
from fpc.appl.state import LATE_CHUNKS
from fpc.appl.stream import TCP_FIN, TCP_SYN

APP_FIELD_NAMES = {f.name for f in APP_FIELDS}


def tcp_session(
    client: bytes,
    server: bytes,
    dport: int = 80,
    seg: int = 1460,
    interleave: bool = True,
) -> AppState:
    """Feeds a client and a server byte stream as TCP segments of `seg` bytes."""
    state = new_app_state("tcp", 40000, dport)
    state.feed(0, b"", 1000, TCP_SYN)
    state.feed(1, b"", 5000, TCP_SYN)
    c_segs = [client[i : i + seg] for i in range(0, len(client), seg)]
    s_segs = [server[i : i + seg] for i in range(0, len(server), seg)]
    seqs = [1001, 5001]
    if interleave:
        order = _interleave(c_segs, s_segs)
    else:
        order = [(0, s) for s in c_segs] + [(1, s) for s in s_segs]
    for direction, payload in order:
        state.feed(direction, payload, seqs[direction], 0)
        seqs[direction] += len(payload)
    assert set(state.fields()) <= APP_FIELD_NAMES
    return state


def _interleave(a: list[bytes], b: list[bytes]) -> list[tuple[int, bytes]]:
    out = []
    for i in range(max(len(a), len(b))):
        if i < len(a):
            out.append((0, a[i]))
        if i < len(b):
            out.append((1, b[i]))
    return out


# HTTP ---------------------------------------------------------------------

REQUESTS = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: example.org:8080\r\nUser-Agent: t/1\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: example.org\r\nContent-Length: 24\r\n\r\n"
    b"GET /body HTTP/1.1\r\n\r\n\r\n"  # body bytes that look like a request
    b"HEAD /c HTTP/1.1\r\nHost: example.org\r\n"
    b"User-Agent: folded\r\n  continued\r\n\r\n"
    b"GET http://proxy.example/abs/path HTTP/1.1\r\n\r\n"
)
RESPONSES = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"10;ext=1\r\nHTTP/1.1 500 X\r\n\r\n0\r\nTrailer: y\r\n\r\n"
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc"
    b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"  # HEAD: no body follows
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
)


@pytest.mark.parametrize("seg", [1, 7, 1460])
def test_http_pipelined_keepalive_every_message_seen_bodies_skipped(seg: int) -> None:
    # All requests first: a response must not arrive before its request.
    state = tcp_session(REQUESTS, RESPONSES, seg=seg, interleave=False)
    fields = state.fields()
    assert state.protocols() == ["http"] and state.errors == 0
    assert fields["http.request.method"] == ["GET", "POST", "HEAD"]
    assert fields["url.path"] == ["/a", "/b", "/c", "/abs/path"]
    assert fields["url.query"] == ["x=1"]
    assert fields["url.domain"] == ["example.org", "proxy.example"]
    assert fields["user_agent.original"] == ["t/1", "folded continued"]
    assert fields["http.response.status_code"] == [200, 100, 201, 404]


def test_http_request_dripped_one_byte_per_segment_is_recognized() -> None:
    state = tcp_session(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n", b"", seg=1)
    assert state.protocols() == ["http"]
    assert state.fields()["url.path"] == ["/x"]


def test_http_response_without_length_runs_to_close() -> None:
    state = tcp_session(
        b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.0 302 no\r\n\r\n"
    )
    assert state.fields()["http.response.status_code"] == [200]


def test_http_connect_hands_the_tunnel_to_tls() -> None:
    hello = client_hello()
    state = tcp_session(
        b"CONNECT tunnel.example:443 HTTP/1.1\r\n\r\n" + hello,
        b"HTTP/1.1 200 Connection established\r\n\r\n" + server_hello(0x0303),
        dport=3128,
    )
    assert state.protocols() == ["http", "tls"]
    assert state.fields()["tls.client.server_name"] == ["sni.example"]


def test_http_h2c_upgrade_hands_over_to_http2() -> None:
    state = new_app_state("tcp", 40000, 80)
    request = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n"
    state.feed(0, request, 1, 0)
    state.feed(1, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", 1, 0)
    state.feed(0, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00", 1 + len(request), 0)
    assert state.protocols() == ["http", "http2"] and state.errors == 0
    assert state.fields()["http.response.status_code"] == [101]


def test_http_websocket_upgrade_is_listed_as_arkime_lists_it() -> None:
    # websocket: GET with Upgrade: websocket, 101 Switching Protocols, frames.
    (body,) = arkime_sessions("websocket", "websocket")
    state = run_session("websocket", body)
    assert state.protocols() == ["http", "websocket"] and state.errors == 0
    assert set(body["protocol"]) == {"http", "websocket", "tcp"}


def test_http_101_to_another_protocol_is_not_websocket() -> None:
    state = new_app_state("tcp", 40000, 80)
    request = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: TLS/1.2\r\n\r\n"
    state.feed(0, request, 1, 0)
    state.feed(1, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.2\r\n\r\n", 1, 0)
    assert state.protocols() == ["http"]


def test_http_request_target_with_a_stray_space_is_kept() -> None:
    state = tcp_session(b"GET /a b.html HTTP/1.1\r\nHost: h\r\n\r\n", b"")
    assert state.errors == 0 and state.fields()["url.path"] == ["/a b.html"]


def test_http_endless_header_is_an_error_not_unbounded_memory() -> None:
    state = tcp_session(b"GET / HTTP/1.1\r\nX: " + b"a" * 40000, b"")
    assert state.errors == 1 and not state.wants_more


def test_http_bad_content_length_is_an_error() -> None:
    state = tcp_session(b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"")
    assert state.errors == 1


# TLS ----------------------------------------------------------------------

GREASE = 0x3A3A
CIPHERS = [GREASE, 0x1301, 0xC02F, 0x009C]
GROUPS = [GREASE, 29, 23]
POINT_FORMATS = [0]


def _ext(etype: int, body: bytes) -> bytes:
    return struct.pack("!HH", etype, len(body)) + body


def client_hello(sni: bytes = b"sni.example", records: int = 1) -> bytes:
    name = struct.pack("!BH", 0, len(sni)) + sni
    exts = [
        _ext(GREASE, b""),
        _ext(0, struct.pack("!H", len(name)) + name),
        _ext(10, struct.pack("!H", 2 * len(GROUPS)) + struct.pack("!3H", *GROUPS)),
        _ext(11, bytes([len(POINT_FORMATS), *POINT_FORMATS])),
        _ext(43, b"\x04\x03\x04\x03\x03"),
    ]
    ext_block = b"".join(exts)
    body = (
        struct.pack("!H", 0x0303)
        + b"\x11" * 32
        + b"\x00"
        + struct.pack("!H", 2 * len(CIPHERS))
        + struct.pack(f"!{len(CIPHERS)}H", *CIPHERS)
        + b"\x01\x00"
        + struct.pack("!H", len(ext_block))
        + ext_block
    )
    msg = bytes([1]) + len(body).to_bytes(3, "big") + body
    return _records(msg, records)


def server_hello(version: int, records: int = 1) -> bytes:
    exts = _ext(65281, b"\x00")
    if version == 0x0304:
        exts += _ext(43, b"\x03\x04")
    body = (
        struct.pack("!H", 0x0303)
        + b"\x22" * 32
        + b"\x00"
        + struct.pack("!HB", 0xC02F, 0)
        + struct.pack("!H", len(exts))
        + exts
    )
    msg = bytes([2]) + len(body).to_bytes(3, "big") + body
    return _records(msg, records) + b"\x14\x03\x03\x00\x01\x01"


def _records(msg: bytes, count: int) -> bytes:
    step = -(-len(msg) // count)
    parts = [msg[i : i + step] for i in range(0, len(msg), step)]
    return b"".join(b"\x16\x03\x01" + struct.pack("!H", len(p)) + p for p in parts)


@pytest.mark.parametrize(("records", "seg"), [(1, 1460), (3, 1460), (4, 1), (2, 5)])
def test_tls_hello_split_over_records_and_segments(records: int, seg: int) -> None:
    state = tcp_session(
        client_hello(records=records), server_hello(0x0304, records), 443, seg
    )
    fields = state.fields()
    assert state.errors == 0 and state.protocols() == ["tls"]
    ja3 = "771,4865-49199-156,0-10-11-43,29-23,0"  # GREASE values left out
    assert fields["tls.client.ja3"] == [hashlib.md5(ja3.encode()).hexdigest()]
    ja3s = "771,49199,65281-43"
    assert fields["tls.server.ja3s"] == [hashlib.md5(ja3s.encode()).hexdigest()]
    assert fields["tls.version"] == ["1.3"]
    assert fields["tls.cipher"] == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    assert fields["tls.client.server_name"] == ["sni.example"]
    assert not state.wants_more


def test_tls_hello_retry_request_is_skipped_for_the_real_server_hello() -> None:
    hrr_random = hashlib.sha256(b"HelloRetryRequest").digest()
    hrr = bytearray(server_hello(0x0304))
    hrr[11:43] = hrr_random  # after record (5) + handshake (4) headers, version (2)
    hrr[5 + 4 + 2 + 32 + 1 : 5 + 4 + 2 + 32 + 3] = b"\x13\x02"  # its cipher
    ccs = b"\x14\x03\x03\x00\x01\x01"
    retry = bytes(hrr[: -len(ccs)]) + ccs  # HRR, then the middlebox CCS
    state = tcp_session(
        client_hello(), retry + server_hello(0x0304), 443, interleave=False
    )
    fields = state.fields()
    assert state.errors == 0
    assert fields["tls.cipher"] == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    assert fields["tls.server.ja3s"] == [hashlib.md5(b"771,49199,65281-43").hexdigest()]


def test_tls_version_without_supported_versions_is_the_hello_version() -> None:
    state = tcp_session(client_hello(), server_hello(0x0303), 8443)
    assert state.fields()["tls.version"] == ["1.2"]


def test_tls_on_an_unusual_port_is_found_by_content() -> None:
    state = tcp_session(client_hello(), server_hello(0x0303), 5555)
    assert state.protocols() == ["tls"]


def test_tls_oversized_record_is_an_error() -> None:
    state = tcp_session(client_hello() + b"\x17\x03\x03\xff\xff", b"", 443)
    assert state.fields()["tls.client.ja3"]  # the hello before it still counts
    bad = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00" + b"\x16\x03\x03\xff\xff"
    assert tcp_session(bad, b"", 443).errors == 1


def test_tls_hello_with_lengths_past_its_end_is_an_error() -> None:
    body = b"\x03\x03" + b"\x00" * 32 + b"\x20"  # session id of 32 bytes: missing
    msg = bytes([1]) + len(body).to_bytes(3, "big") + body
    state = tcp_session(_records(msg, 1), b"", 443)
    assert state.errors == 1 and "tls.client.ja3" not in state.fields()


# DNS ----------------------------------------------------------------------


def _dns_response() -> bytes:
    msg = dpkt.dns.DNS(id=7, op=dpkt.dns.DNS_RA | dpkt.dns.DNS_RD)
    msg.qr = dpkt.dns.DNS_R
    msg.rcode = dpkt.dns.DNS_RCODE_NOERR
    msg.qd = [dpkt.dns.DNS.Q(name="www.example.com", type=dpkt.dns.DNS_A)]
    cname = dpkt.dns.DNS.RR(name="www.example.com", type=dpkt.dns.DNS_CNAME)
    cname.cname = "web.example.com"
    addr = dpkt.dns.DNS.RR(name="web.example.com", type=dpkt.dns.DNS_A)
    addr.ip = bytes([192, 0, 2, 7])
    mx = dpkt.dns.DNS.RR(name="example.com", type=dpkt.dns.DNS_MX)
    mx.mxname, mx.preference = "mail.example.com", 5
    msg.an = [cname, addr, mx]
    return bytes(msg)


EXPECTED_DNS = {
    "dns.question.name": ["www.example.com"],
    "dns.question.type": ["A"],
    "dns.response_code": ["NOERROR"],
    "dns.op_code": ["QUERY"],
    "dns.header_flags": ["RD", "RA"],  # the flags the message was built with
    "dns.answers.data": ["web.example.com", "192.0.2.7", "mail.example.com"],
    "dns.resolved_ip": ["192.0.2.7"],
}


def test_dns_query_flags_are_left_to_the_response() -> None:
    query = dpkt.dns.DNS(id=7, op=dpkt.dns.DNS_RD)
    query.qd = [dpkt.dns.DNS.Q(name="www.example.com", type=dpkt.dns.DNS_A)]
    state = new_app_state("udp", 33000, 53)
    state.feed(0, bytes(query), None, 0)
    assert state.errors == 0 and "dns.header_flags" not in state.fields()


def test_dns_udp_response_fields() -> None:
    state = new_app_state("udp", 33000, 53)
    state.feed(1, _dns_response(), None, 0)
    assert state.protocols() == ["dns"] and state.errors == 0
    assert state.fields() == EXPECTED_DNS


@pytest.mark.parametrize("seg", [1, 3, 1460])
def test_dns_tcp_length_prefixed_messages_split_anywhere(seg: int) -> None:
    msg = _dns_response()
    framed = struct.pack("!H", len(msg)) + msg
    state = tcp_session(b"", framed * 2, dport=53, seg=seg)
    assert state.errors == 0 and state.fields() == EXPECTED_DNS


def test_dns_tcp_segment_shaped_like_sslv2_stays_dns() -> None:
    # Cut after the high flags byte, a segment starts 0x83 (RA, NXDOMAIN),
    # then qdcount 1 and ancount 2: the shape of an SSLv2 CLIENT-HELLO.
    msg = dpkt.dns.DNS(id=7, op=dpkt.dns.DNS_RA)
    msg.qr, msg.rcode = dpkt.dns.DNS_R, dpkt.dns.DNS_RCODE_NXDOMAIN
    msg.qd = [dpkt.dns.DNS.Q(name="www.example.com", type=dpkt.dns.DNS_A)]
    msg.an = []
    for owner, target in (("www.example.com", "a.example"), ("a.example", "b.x")):
        rr = dpkt.dns.DNS.RR(name=owner, type=dpkt.dns.DNS_CNAME)
        rr.cname = target
        msg.an.append(rr)
    framed = struct.pack("!H", len(bytes(msg))) + bytes(msg)
    assert framed[5:10] == b"\x83\x00\x01\x00\x02"
    state = new_app_state("tcp", 40000, 53)
    state.feed(1, b"", 5000, TCP_SYN)
    for a, b in ((0, 5), (5, 10), (10, len(framed))):
        state.feed(1, framed[a:b], 5001 + a, 0)
    assert state.protocols() == ["dns"] and state.errors == 0
    assert state.fields()["dns.answers.data"] == ["a.example", "b.x"]
    assert state.fields()["dns.response_code"] == ["NXDOMAIN"]


def _query_with_name(name: bytes) -> bytes:
    return struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"


@pytest.mark.parametrize(
    "name",
    [
        b"\xc0\x0c",  # points at itself
        b"\x01a\xc0\x0c",  # label, then back to its own start
        b"\xc0\x20",  # forward, past the end
        b"\x01a\xc0\x0e",  # forward into itself
        b"\x40abc\x00",  # reserved label type
        b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63
        + b"\x3f" + b"d" * 63 + b"\x00",  # 257 bytes: over 255
    ],
)  # fmt: skip
def test_dns_bad_names_are_counted_errors_not_hangs(name: bytes) -> None:
    state = new_app_state("udp", 33000, 53)
    state.feed(0, _dns_response(), None, 0)  # a good message first
    state.feed(0, _query_with_name(name), None, 0)
    assert state.errors == 1 and not state.wants_more
    assert state.fields() == EXPECTED_DNS


def test_dns_names_lowercased_and_odd_bytes_escaped() -> None:
    name = b'\x07We.B\t"\xff\x07Example\x00'  # label bytes: We.B<TAB>"<0xff>
    state = new_app_state("udp", 33000, 53)
    state.feed(0, _query_with_name(name), None, 0)
    assert state.fields()["dns.question.name"] == ["we\\046b\\t\\034\\255.example"]


def test_dns_off_port_found_by_content_but_not_netbios_names() -> None:
    state = new_app_state("udp", 40000, 40001)
    state.feed(0, _query_with_name(b"\x03www\x07example\x00"), None, 0)
    assert state.protocols() == ["dns"]
    netbios = struct.pack("!6H", 1, 0x0110, 1, 0, 0, 0) + b"\x20" + b"A" * 32
    netbios += b"\x00\x00\x20\x00\x01"  # type NB, class IN
    state = new_app_state("udp", 40000, 40001)
    state.feed(0, netbios, None, 0)
    assert state.protocols() == []


def test_dns_random_udp_off_port_is_not_dns() -> None:
    state = new_app_state("udp", 40000, 40001)
    state.feed(0, b"\x00" * 40, None, 0)
    state.feed(0, bytes(range(60)), None, 0)
    assert state.protocols() == []


# SSH ----------------------------------------------------------------------


def test_ssh_banners_split_and_server_speaking_first() -> None:
    state = new_app_state("tcp", 40000, 2200)
    state.feed(1, b"SSH-2.0-Serv", 9000, 0)
    state.feed(0, b"SSH-2.0-Cli 1.0\r", 100, 0)
    state.feed(1, b"er_9\r\n\x00\x00\x01", 9012, 0)
    state.feed(0, b"\n", 116, 0)
    fields = state.fields()
    assert fields["fpc.ssh.server"] == ["SSH-2.0-Server_9"]
    assert fields["fpc.ssh.client"] == ["SSH-2.0-Cli 1.0"]
    assert state.wants_more  # each side's KEXINIT comes next


def test_ssh_banner_over_255_bytes_is_an_error() -> None:
    state = tcp_session(b"SSH-2.0-" + b"x" * 300 + b"\r\n", b"", dport=22)
    assert state.errors == 1


# State --------------------------------------------------------------------


def test_state_unknown_protocol_stops_wanting_data_after_late_chunks() -> None:
    state = tcp_session(b"\x00\x01binary", b"\x00\x05junk-junk-junk", dport=9999)
    assert state.protocols() == [] and state.wants_more  # TLS may start later
    seq = 1009
    for _ in range(LATE_CHUNKS):
        state.feed(0, b"more junk", seq, 0)
        seq += 9
    assert not state.wants_more and state.fields() == {}


def test_state_tls_after_starttls_is_found_in_a_later_chunk() -> None:
    client = b"EHLO me\r\n" + b"STARTTLS\r\n" + client_hello()
    server = b"220 mail.example ESMTP\r\n250 ok\r\n220 go ahead\r\n"
    state = tcp_session(client, server + server_hello(0x0303), dport=25, seg=10)
    assert state.protocols() == ["smtp", "tls"]  # the SMTP parser hands it over
    assert state.fields()["tls.client.server_name"] == ["sni.example"]
    state = new_app_state("tcp", 40000, 2525)
    state.feed(1, server, 1, 0)
    state.feed(0, b"EHLO me\r\n", 1, 0)
    state.feed(0, b"STARTTLS\r\n", 10, 0)
    state.feed(0, client_hello(), 20, 0)
    assert state.protocols()[-1] == "tls"
    assert state.fields()["tls.client.server_name"] == ["sni.example"]


def test_state_fin_on_both_sides_stops_wanting_data() -> None:
    state = new_app_state("tcp", 1, 2)
    state.feed(0, b"", 10, TCP_SYN)
    state.feed(0, b"GET", 11, 0)
    assert state.wants_more
    state.feed(0, b"", 14, TCP_FIN)
    state.feed(1, b"", 70, TCP_FIN)
    assert not state.wants_more


def test_state_every_registered_parser_is_importable() -> None:
    assert {"http", "dns", "tls", "ssh"} <= set(registered_names())


# HTTP/2 -------------------------------------------------------------------


def h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes([ftype, flags])
        + (stream.to_bytes(4, "big") + payload)
    )


def h2_session(client_frames: bytes, server_frames: bytes, seg: int = 7) -> AppState:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    return tcp_session(preface + client_frames, server_frames, seg=seg)


def test_http2_headers_across_frames_and_segments_become_http_fields() -> None:
    enc = hpack.Encoder()
    request = enc.encode(
        [(":method", "POST"), (":scheme", "http"), (":authority", "h2.example:8080"),
         (":path", "/up?x=1"), ("user-agent", "ua/1"), ("content-type", "text/plain")]
    )  # fmt: skip
    client = h2_frame(0x4, 0, 0, b"") + h2_frame(0x1, 0x20, 1, bytes(5) + request[:9])
    client += h2_frame(0x9, 0x4, 1, request[9:]) + h2_frame(0x0, 0x1, 1, bytes(40000))
    response = hpack.Encoder().encode([(":status", "201")])
    pushed = hpack.Encoder().encode([(":method", "GET"), (":path", "/pushed.css")])
    server = h2_frame(0x4, 0, 0, b"") + h2_frame(
        0x1, 0x4 | 0x8, 1, b"\x02" + response + b"\0\0"
    )
    server += h2_frame(0x5, 0x4, 1, bytes(4) + pushed)  # fmt: skip
    server += h2_frame(0x0, 0x1 | 0x8, 1, b"\x03hello\0\0\0")  # padded DATA
    state = h2_session(client, server)
    f = state.fields()
    assert state.errors == 0 and state.protocols() == ["http2", "http"]
    assert set(f["http.request.method"]) == {"POST", "GET"}
    assert f["url.domain"] == ["h2.example"] and f["url.query"] == ["x=1"]
    assert set(f["url.path"]) == {"/up", "/pushed.css"}
    assert f["user_agent.original"] == ["ua/1"] and f["http.version"] == ["2"]
    assert f["http.request.mime_type"] == ["text/plain"]
    assert f["http.response.status_code"] == [201]
    bodies = {hashlib.md5(bytes(40000)).hexdigest(), hashlib.md5(b"hello").hexdigest()}
    assert set(f["fpc.http.body.md5"]) == bodies


@pytest.mark.parametrize("status", [b"\xb2", b"\xb900", b"2" * 5000, b"20"])
def test_http2_status_not_three_ascii_digits_is_left_out(status: bytes) -> None:
    # latin-1 '²' and '¹' pass str.isdigit() but not int()
    response = hpack.Encoder().encode([(":status", status)])
    server = h2_frame(0x4, 0, 0, b"") + h2_frame(0x1, 0x4, 1, response)
    state = h2_session(h2_frame(0x4, 0, 0, b""), server)
    assert state.errors == 0
    assert "http.response.status_code" not in state.fields()


def test_http2_oversized_header_block_ends_only_http2() -> None:
    block = h2_frame(0x1, 0, 1, bytes(60000)) + h2_frame(0x9, 0, 1, bytes(10000))
    state = h2_session(block, b"")
    assert state.errors == 1 and "http.request.method" not in state.fields()


def test_http2_undecodable_header_block_is_an_error() -> None:
    state = h2_session(h2_frame(0x1, 0x4, 1, b"\xff\xff\xff\xff\xff\xff\x7f"), b"")
    assert state.errors == 1 and state.protocols() == ["http2", "http"]


def test_http_connect_target_is_not_a_domain() -> None:
    state = tcp_session(b"CONNECT Tunnel.example:443 HTTP/1.1\r\n\r\n", b"", dport=3128)
    fields = state.fields()
    assert fields["fpc.http.connect_target"] == ["tunnel.example:443"]
    assert "url.domain" not in fields and "url.path" not in fields
