"""Hostile and broken input to the app-layer parsers (hypothesis).

Whatever arrives, `feed` must not raise or hang; a parser error is counted in
`errors` and ends only that parser; fields stay within their bounds.
"""

from __future__ import annotations

import struct
import time

import dpkt
import hpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fpc.appl import AppState, new_app_state, registered_names
from fpc.appl.fields import APP_FIELDS
from fpc.appl.sink import FIELD_LIMITS, MAX_VALUE_CHARS, MAX_VALUES_PER_FIELD
from fpc.appl.state import MAX_HANDOFFS
from fpc.appl.stream import TCP_FIN, TCP_RST, TCP_SYN

APP_FIELD_NAMES = {f.name for f in APP_FIELDS}
PORTS = [22, 25, 53, 67, 80, 88, 123, 135, 143, 161, 389, 443, 445, 547, 1194, 3306]
PORTS += [3389]
PORTS += [5353, 5432, 8080, 40000]


def _dns_seed() -> bytes:
    msg = dpkt.dns.DNS(id=1, op=dpkt.dns.DNS_RD)
    msg.qr = dpkt.dns.DNS_R
    msg.qd = [dpkt.dns.DNS.Q(name="a.example.net", type=dpkt.dns.DNS_AAAA)]
    rr = dpkt.dns.DNS.RR(name="a.example.net", type=dpkt.dns.DNS_AAAA)
    rr.ip6 = bytes(16)
    msg.an = [rr]
    ns = dpkt.dns.DNS.RR(
        name="example.net", type=dpkt.dns.DNS_NS, nsname="ns.example.net"
    )
    txt = dpkt.dns.DNS.RR(name="example.net", type=dpkt.dns.DNS_TXT, text=[b"v=1"])
    caa = dpkt.dns.DNS.RR(
        name="example.net", type=257, rdata=b"\x00\x05issueca.example"
    )
    msg.ns, msg.ar = [ns], [txt, caa]
    return bytes(msg)


def _http2_seed() -> bytes:
    block = hpack.Encoder().encode([(":method", "GET"), (":path", "/p")])
    head = len(block).to_bytes(3, "big") + b"\x01\x04\x00\x00\x00\x01"
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + head + block


SEEDS = [
    b"GET /x?y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody",
    b"\x16\x03\x01\x00\x33\x01\x00\x00\x2f\x03\x03" + b"\x00" * 32
    + b"\x00\x00\x02\x13\x01\x01\x00\x00\x04\x00\x17\x00\x00",
    b"SSH-2.0-OpenSSH_9.0\r\n",
    _dns_seed(),
    _http2_seed(),
]  # fmt: skip


def check_invariants(state: AppState) -> None:
    fields = state.fields()
    assert set(fields) <= APP_FIELD_NAMES
    for name, values in fields.items():
        assert len(values) <= FIELD_LIMITS.get(name, MAX_VALUES_PER_FIELD)
        for v in values:
            assert not isinstance(v, str) or len(v) <= MAX_VALUE_CHARS
    assert state.errors >= 0
    assert isinstance(state.wants_more, bool)
    assert set(state.protocols()) <= set(registered_names())


def test_fuzz_seeds_are_valid_messages() -> None:
    for seed, port, field in zip(
        SEEDS,
        [80, 80, 443, 22, 53, 8080],
        ["url.path", "http.response.status_code", "tls.client.ja3",
         "fpc.ssh.client", "fpc.dns.additional.data", "url.path"],
        strict=True,
    ):  # fmt: skip
        transport = "udp" if port == 53 else "tcp"
        state = new_app_state(transport, 50000, port)
        state.feed(0, seed, 1 if transport == "tcp" else None, 0)
        assert state.errors == 0 and state.fields().get(field), seed


packets = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1),  # direction
        st.binary(max_size=300),
        st.integers(min_value=0, max_value=(1 << 32) - 1),  # seq
        st.sampled_from([0, TCP_SYN, TCP_FIN, TCP_RST, 16, 24]),
    ),
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(
    transport=st.sampled_from(["tcp", "udp", "sctp"]),
    sport=st.sampled_from(PORTS),
    dport=st.sampled_from(PORTS),
    pkts=packets,
)
def test_fuzz_random_packets_never_raise(
    transport: str, sport: int, dport: int, pkts: list
) -> None:
    state = new_app_state(transport, sport, dport)
    for direction, payload, seq, flags in pkts:
        state.feed(direction, payload, seq if transport == "tcp" else None, flags)
    check_invariants(state)


def _mutate(seed: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    data = bytearray(seed)
    for pos, value in flips:
        data[pos % len(data)] = value
    return bytes(data[: cut % (len(data) + 1)])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    cut=st.integers(min_value=0, max_value=1000),
    seg=st.integers(min_value=1, max_value=64),
    tail=st.binary(max_size=64),
    port=st.sampled_from(PORTS),
)
def test_fuzz_mutated_and_truncated_messages_are_errors_at_most(
    seed: bytes,
    flips: list[tuple[int, int]],
    cut: int,
    seg: int,
    tail: bytes,
    port: int,
) -> None:
    data = _mutate(seed, flips, cut) + tail
    for transport in ("tcp", "udp"):
        state = new_app_state(transport, 50000, port)
        if transport == "udp":
            state.feed(0, data, None, 0)
            state.feed(1, data, None, 0)
        else:
            state.feed(0, b"", 99, TCP_SYN)
            for i in range(0, len(data), seg):
                state.feed(0, data[i : i + seg], 100 + i, 0)
            state.feed(0, b"", 100 + len(data), TCP_FIN)
        check_invariants(state)
        # each parser counts at most one error, then stops
        assert state.errors <= (1 + MAX_HANDOFFS) * len(registered_names())


@settings(max_examples=50, deadline=None)
@given(count=st.integers(min_value=70, max_value=200))
def test_fuzz_many_distinct_values_stay_bounded(count: int) -> None:
    state = new_app_state("tcp", 50000, 80)
    state.feed(0, b"", 0, TCP_SYN)
    stream = b"".join(
        b"GET /" + str(i).encode() * 400 + b" HTTP/1.1\r\nHost: h%d\r\n\r\n" % i
        for i in range(count)
    )
    state.feed(0, stream, 1, 0)
    check_invariants(state)
    assert len(state.fields()["url.path"]) == MAX_VALUES_PER_FIELD
    assert state.errors == 0


def _drip(port: int, data: bytes) -> float:
    state = new_app_state("tcp", 40000, port)
    state.feed(0, b"", 0, TCP_SYN)
    start = time.perf_counter()
    for i in range(len(data)):
        state.feed(0, data[i : i + 1], 1 + i, 0)
    check_invariants(state)
    return time.perf_counter() - start


def test_hostile_one_byte_segments_cost_linear_time() -> None:
    """64 KiB messages fed one byte per TCP segment: a quadratic buffer would
    take minutes here; the bound is loose so a loaded machine still passes."""
    dns = struct.pack("!6H", 1, 0x0100, 1, 0, 0, 0) + b"\x03abc\x00\x00\x01\x00\x01"
    dns += bytes(65535 - len(dns))
    hello = b"\x01" + (60000).to_bytes(3, "big") + bytes(60000)
    records = b"".join(b"\x16\x03\x01\x00\x01" + hello[i : i + 1] for i in range(20000))
    head = b"GET / HTTP/1.1\r\nX: " + b"a" * 16000 + b"\r\n\r\n"
    for port, data in ((53, struct.pack("!H", len(dns)) + dns), (443, records),
                       (80, head)):  # fmt: skip
        assert _drip(port, data) < 20.0


def test_hostile_one_byte_segments_of_framed_protocols_cost_linear_time() -> None:
    """Long LDAP, Kerberos and SMB messages one byte per TCP segment."""
    size = 512 * 1024
    ldap = b"\x30\x84" + (size + 5).to_bytes(4, "big") + b"\x02\x01\x01\x64\x00"
    ldap += bytes(size)
    krb5 = (60000).to_bytes(4, "big") + b"\x6a\x83" + (59996).to_bytes(3, "big")
    krb5 += bytes(59995)
    smb = b"\x00" + (size).to_bytes(3, "big") + b"\xfeSMB" + bytes(size - 4)
    for port, data in ((389, ldap), (88, krb5), (445, smb)):
        assert _drip(port, data) < 20.0, port
