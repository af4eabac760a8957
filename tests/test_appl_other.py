"""App-layer parsers and TCP reassembly on captures from other projects.

No expected output comes with these captures, so dpkt is the reference: it
decodes the same payloads (DNS messages, HTTP request lines, TLS hellos) and
the test compares. Sessions are grouped by 5-tuple in capture order.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections import defaultdict
from pathlib import Path

import dpkt
import pytest
from dpkt import ssl_ciphersuites

from conftest import CORPUS  # noqa: E402
from fpc.appl import AppState, new_app_state
from fpc.appl.stream import SEQ_MOD, TCP_SYN, TcpStream
from fpc.appl.tls_names import CIPHER_SUITES

OTHER = CORPUS / "other"

Packet = tuple[int, bytes, int | None, int]  # direction, payload, seq, flags


def _frames(path: Path):  # noqa: ANN202
    with open(path, "rb") as f:
        opener = dpkt.pcapng.Reader if path.suffix == ".pcapng" else dpkt.pcap.Reader
        reader = opener(f)
        link = reader.datalink()
        for _ts, frame in reader:
            if link == dpkt.pcap.DLT_EN10MB:
                ip = dpkt.ethernet.Ethernet(frame).data
            elif link in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
                ip = dpkt.loopback.Loopback(frame).data
            elif link == dpkt.pcap.DLT_LINUX_SLL:
                ip = dpkt.sll.SLL(frame).data
            else:
                continue
            if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                yield ip


def sessions(name: str) -> dict[tuple, list[Packet]]:
    """Packets per session; direction 0 is the side that sent the first packet."""
    out: dict[tuple, list[Packet]] = defaultdict(list)
    first: dict[tuple, tuple] = {}
    for ip in _frames(OTHER / name):
        l4 = ip.data
        if not isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
            continue
        src = (ipaddress.ip_address(ip.src), l4.sport)
        dst = (ipaddress.ip_address(ip.dst), l4.dport)
        key = (isinstance(l4, dpkt.tcp.TCP), *sorted([src, dst]))
        first.setdefault(key, src)
        direction = 0 if src == first[key] else 1
        if isinstance(l4, dpkt.tcp.TCP):
            out[key].append((direction, bytes(l4.data), l4.seq, l4.flags))
        else:
            out[key].append((direction, bytes(l4.data), None, 0))
    return out


def run(key: tuple, packets: list[Packet]) -> AppState:
    (_, a), (_, b) = key[1], key[2]
    state = new_app_state("tcp" if key[0] else "udp", a, b)
    for packet in packets:
        state.feed(*packet)
    return state


# DNS over TCP --------------------------------------------------------------


def test_dns_over_tcp_capture_question_names_match_dpkt() -> None:
    found = 0
    for key, packets in sessions("chrissanders-dns-tcp.pcapng").items():
        if not key[0]:
            continue  # the capture also holds the same query over UDP
        want: list[str] = []
        for direction in (0,):  # dpkt cannot read the DNSKEY answers
            data = _client_stream(packets, direction)  # in-order bytes
            while len(data) >= 2:
                size = struct.unpack("!H", data[:2])[0]
                want += [q.name for q in dpkt.dns.DNS(data[2 : 2 + size]).qd]
                data = data[2 + size :]
        if not want:
            continue
        state = run(key, packets)
        assert state.protocols() == ["dns"] and state.errors == 0
        assert state.fields()["dns.question.name"] == list(dict.fromkeys(want))
        found += 1
    assert found


# HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["chrissanders-http-google.pcapng", "chrissanders-http-ip4and6.pcapng",
     "suricata-null-loopback-http.pcap"],
)  # fmt: skip
def test_http_capture_request_lines_match_dpkt(name: str) -> None:
    found = 0
    for key, packets in sessions(name).items():
        methods, paths = [], []
        for direction, payload, _s, _f in packets:
            if direction == 0 and payload[:4] in (b"GET ", b"POST", b"HEAD"):
                request = dpkt.http.Request(payload)
                methods.append(request.method)
                paths.append(request.uri.split("?")[0])
        if not methods:
            continue
        fields = run(key, packets).fields()
        assert fields["http.request.method"] == list(dict.fromkeys(methods))
        assert fields["url.path"] == list(dict.fromkeys(paths))
        found += 1
    assert found


# TLS -----------------------------------------------------------------------


def _client_stream(packets: list[Packet], direction: int) -> bytes:
    stream = TcpStream()
    return b"".join(b"".join(stream.accept(s, p, f)) for d, p, s, f in packets
                    if d == direction)  # fmt: skip


def _hello(packets: list[Packet], direction: int, cls: type) -> dpkt.Packet | None:
    data = _client_stream(packets, direction)
    try:
        records, _ = dpkt.ssl.tls_multi_factory(data)
    except dpkt.UnpackError:
        return None
    if not records or records[0].type != 22:
        return None
    handshake = dpkt.ssl.TLSHandshake(records[0].data)
    return handshake.data if isinstance(handshake.data, cls) else None


def _u16s(raw: bytes) -> list[int]:
    return list(struct.unpack(f"!{len(raw) // 2}H", raw))


def _ja3_by_dpkt(hello: dpkt.ssl.TLSClientHello) -> str:
    grease = {0x0A0A + 0x1010 * i for i in range(16)}
    exts = dict(hello.extensions)
    groups = _u16s(exts[10][2:]) if 10 in exts else []
    formats = list(exts[11][1:]) if 11 in exts else []
    parts = [
        [hello.version],
        [c.code for c in hello.ciphersuites],
        [t for t, _ in hello.extensions],
        groups,
        formats,
    ]
    text = ",".join("-".join(str(v) for v in part if v not in grease) for part in parts)
    return hashlib.md5(text.encode()).hexdigest()


def _ja3s_by_dpkt(hello: dpkt.ssl.TLSServerHello) -> str:
    exts = "-".join(str(t) for t, _ in getattr(hello, "extensions", []))
    text = f"{hello.version},{hello.ciphersuite.code},{exts}"
    return hashlib.md5(text.encode()).hexdigest()


@pytest.mark.parametrize(
    "name", ["zeek-tls12-ecdhe.pcap", "zeek-tls13-ech.pcap", "zeek-tls13-wolfssl.pcap"]
)
def test_tls_capture_ja3_ja3s_and_cipher_match_dpkt(name: str) -> None:
    found = 0
    for key, packets in sessions(name).items():
        client = _hello(packets, 0, dpkt.ssl.TLSClientHello)
        server = _hello(packets, 1, dpkt.ssl.TLSServerHello)
        if client is None or server is None:
            continue
        state = run(key, packets)
        fields = state.fields()
        assert state.errors == 0
        assert fields["tls.client.ja3"] == [_ja3_by_dpkt(client)]
        assert fields["tls.server.ja3s"] == [_ja3s_by_dpkt(server)]
        code = server.ciphersuite.code
        assert fields["tls.cipher"] == [
            "TLS_" + server.ciphersuite.name.removeprefix("TLS_")
        ]
        assert code in CIPHER_SUITES
        found += 1
    assert found


def test_tls_cipher_names_agree_with_dpkt_table() -> None:
    for code, name in CIPHER_SUITES.items():
        theirs = ssl_ciphersuites.BY_CODE[code].name.removeprefix("TLS_")
        assert name in ("TLS_" + theirs, "TLS_" + theirs + "_SCSV"), hex(code)


# SSH -----------------------------------------------------------------------


def test_ssh_capture_banners_are_the_first_lines() -> None:
    ((key, packets),) = [
        (k, p) for k, p in sessions("zeek-ssh-single-conn.pcap").items() if k[0]
    ]
    firsts = {}
    for direction, payload, _s, _f in packets:
        if payload and direction not in firsts:
            firsts[direction] = payload.split(b"\n")[0].rstrip(b"\r").decode()
    fields = run(key, packets).fields()
    assert fields["fpc.ssh.client"] == [firsts[0]]
    assert fields["fpc.ssh.server"] == [firsts[1]]


# TCP reassembly --------------------------------------------------------------


def test_stream_on_thinned_capture_with_wraparound_stops_at_the_first_gap() -> None:
    """An FTP transfer over 4 GiB thinned to a few packets: the sequence
    numbers wrap past 2**32 and jump by gigabytes. Only the contiguous start
    is delivered; the far-away segments are neither delivered nor held."""
    data_session = max(
        sessions("zeek-ftp-bigtransfer-seqwrap.pcap").values(),
        key=lambda pkts: sum(len(p) for _d, p, _s, _f in pkts),
    )
    own = [p for p in data_session if p[0] == 1]
    syn = next(s for _d, _p, s, f in own if f & TCP_SYN)
    assert any(s < syn for _d, p, s, _f in own if p)  # wraps past 2**32
    chain, expect = b"", (syn + 1) % SEQ_MOD
    by_seq = {s: p for _d, p, s, _f in own if p}
    while expect in by_seq:  # the contiguous run right after the SYN
        chain += by_seq[expect]
        expect = (expect + len(by_seq[expect])) % SEQ_MOD
    stream = TcpStream()
    out = b"".join(b"".join(stream.accept(s, p, f)) for _d, p, s, f in own)
    assert out == chain and len(chain) > 0
    assert stream.held_bytes < 64 * 1024
