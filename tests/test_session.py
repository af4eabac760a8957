"""The session table on hand-built packets: direction, timeouts, close, segments."""

from __future__ import annotations

import dpkt
import numpy as np
import pytest

from conftest import CORPUS
from fpc.appl.state import AppState
from fpc.decode import DECODED, decode_batch
from fpc.packets import PacketBatch
from fpc.session import SessionLimits, SessionTable, _run_bounds
from fpc.spi import build_record

NS = 1_000_000_000
A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
SYN, ACK, FIN, RST, PSH = (dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN,
                           dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH)  # fmt: skip


def tcp(src, dst, sport, dport, flags, payload=b"", seq=1):
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, data=payload)
    return _eth(dpkt.ip.IP(src=src, dst=dst, p=6, data=seg))


def udp(src, dst, sport, dport, payload=b"x"):
    return _eth(dpkt.ip.IP(src=src, dst=dst, p=17, data=dpkt.udp.UDP(
        sport=sport, dport=dport, data=payload)))  # fmt: skip


def _eth(ip):
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def corpus_frames(name):
    """(seconds, frame) of every packet of corpus capture `name`."""
    with open(CORPUS / "arkime" / f"{name}.pcap", "rb") as f:
        return [(float(ts), bytes(frame)) for ts, frame in dpkt.pcap.Reader(f)]


def run(packets, limits=None, batch_size=1000):
    """Feed (seconds, frame) pairs in batches; return the records, oldest first."""
    table = SessionTable(limits or SessionLimits(), app_layer=True)
    for start in range(0, len(packets), batch_size):
        chunk = packets[start : start + batch_size]
        batch = PacketBatch.from_list([(int(t * NS), len(f), f) for t, f in chunk], 1)
        n = len(batch)
        files, pos = np.ones(n, dtype=np.int64), np.arange(start, start + n)
        table.add_batch(batch, decode_batch(batch), files, pos)
    table.flush_all()
    return [build_record("t", s) for s in table.take_done()], table


def handshake(t=0.0, sport=40000, isn=0):
    """SYN, SYN-ACK, ACK and a request; the client's data starts at isn + 1."""
    return [
        (t, tcp(A, B, sport, 80, SYN, seq=isn)),
        (t + 0.1, tcp(B, A, 80, sport, SYN | ACK, seq=0)),
        (t + 0.2, tcp(A, B, sport, 80, ACK, seq=isn + 1)),
        (
            t + 0.3,
            tcp(A, B, sport, 80, PSH | ACK, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                seq=isn + 1),
        ),
    ]  # fmt: skip


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_session_client_is_syn_sender_and_counts_per_side(batch_size):
    records, _ = run(handshake(), batch_size=batch_size)
    assert len(records) == 1
    r = records[0]
    assert (r["source"]["ip"], r["source"]["port"]) == ("10.0.0.1", 40000)
    assert (r["destination"]["ip"], r["destination"]["port"]) == ("10.0.0.2", 80)
    assert (r["source"]["packets"], r["destination"]["packets"]) == (3, 1)
    assert r["fpc"]["source"]["payload_bytes"] == 27
    assert r["fpc"]["tcp"]["syn"] == 1 and r["fpc"]["tcp"]["syn_ack"] == 1
    assert r["fpc"]["packet"]["pos"] == [0, 1, 2, 3]
    assert r["url"]["domain"] == ["x"]


def test_session_starting_at_syn_ack_takes_the_receiver_as_client():
    records, _ = run(handshake()[1:])
    assert records[0]["source"]["port"] == 40000


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_session_idle_gap_longer_than_timeout_starts_a_new_session(batch_size):
    packets = [(0.0, udp(A, B, 5000, 53)), (1.0, udp(B, A, 53, 5000)),
               (200.0, udp(A, B, 5000, 53))]  # fmt: skip
    records, _ = run(packets, SessionLimits(udp_timeout_s=60), batch_size)
    assert [r["network"]["packets"] for r in records] == [2, 1]
    assert records[0]["fpc"]["end_reason"] == "idle"


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_session_syn_after_rst_reuses_the_port_as_a_new_session(batch_size):
    packets = (handshake() + [(0.5, tcp(A, B, 40000, 80, RST, seq=28))]
               + handshake(t=1.0, isn=90_000))  # fmt: skip
    records, _ = run(packets, batch_size=batch_size)
    assert [r["network"]["packets"] for r in records] == [5, 4]
    assert records[0]["fpc"]["end_reason"] == "tcp_close"


def test_session_closed_by_fin_ends_after_the_linger():
    packets = handshake() + [
        (1.0, tcp(A, B, 40000, 80, FIN | ACK)),
        (1.1, tcp(B, A, 80, 40000, FIN | ACK)),
        (20.0, udp(A, B, 1, 2)),  # moves packet time past the linger
    ]
    records, table = run(packets, SessionLimits(tcp_close_s=5))
    tcp_rec = [r for r in records if r["network"]["transport"] == "tcp"][0]
    assert tcp_rec["fpc"]["end_reason"] == "tcp_close"


def test_session_long_session_emits_segments_with_all_packets():
    packets = [(float(i), udp(A, B, 7000, 7001)) for i in range(25)]
    records, _ = run(packets, SessionLimits(segment_packets=10), batch_size=5)
    assert [r["fpc"]["segment"] for r in records] == [0, 1, 2]
    assert [r["network"]["packets"] for r in records] == [10, 10, 5]
    assert sum(r["network"]["packets"] for r in records) == 25
    assert len({r["event"]["id"] for r in records}) == 3
    assert len({r["fpc"]["session"] for r in records}) == 1


def test_session_table_bound_evicts_the_longest_idle():
    packets = [(i * 0.01, udp(A, B, 1000 + i, 53)) for i in range(150)]
    records, table = run(packets, SessionLimits(max_sessions=100), batch_size=10)
    assert table.counters["evicted"] == 50
    evicted = [r for r in records if r["fpc"]["end_reason"] == "evicted"]
    assert sorted(r["source"]["port"] for r in evicted) == list(range(1000, 1050))


def test_session_fragments_join_their_datagram_session():
    payload = b"q" * 3000
    ip = dpkt.ip.IP(src=A, dst=B, p=17, id=77,
                    data=dpkt.udp.UDP(sport=5353, dport=53, data=payload))  # fmt: skip
    ip.data.ulen = 8 + len(payload)
    raw = bytes(ip.data)
    frames = []
    for off in range(0, len(raw), 1480):
        part = raw[off : off + 1480]
        more = off + 1480 < len(raw)
        frag = dpkt.ip.IP(src=A, dst=B, p=17, id=77, data=part,
                          offset=off, mf=int(more))  # fmt: skip
        frames.append((0.0, _eth(frag)))
    records, table = run(frames)
    assert len(records) == 1
    assert records[0]["network"]["packets"] == 3
    assert records[0]["source"]["port"] == 5353


def test_session_without_payload_holds_no_app_state():
    packets = [(i * 0.001, tcp(A, B, 20000 + i, 80, SYN)) for i in range(50)]
    table = SessionTable(SessionLimits(), app_layer=True)
    batch = PacketBatch.from_list([(int(t * NS), len(f), f) for t, f in packets], 1)
    n = len(batch)
    files, pos = np.ones(n, dtype=np.int64), np.arange(n)
    table.add_batch(batch, decode_batch(batch), files, pos)
    assert len(table) == 50 and table.counters["app_states"] == 0
    records, table = run(handshake())
    assert records[0]["url"]["domain"] == ["x"]
    assert table.counters["app_states"] == 0  # dropped with the ended session


def test_session_segments_share_the_app_fields_of_their_session():
    packets = handshake() + [
        (1.0 + i, tcp(A, B, 40000, 80, ACK, seq=100 + i)) for i in range(10)
    ]
    records, _ = run(packets, SessionLimits(segment_packets=5), batch_size=2)
    assert [r["fpc"]["segment"] for r in records] == [0, 1, 2]
    assert all(r["url"]["domain"] == ["x"] for r in records)
    assert sum(r["network"]["packets"] for r in records) == 14


def test_session_flush_reason_is_recorded():
    table = SessionTable(SessionLimits())
    batch = PacketBatch.from_list([(0, 60, udp(A, B, 1, 2))], 1)
    table.add_batch(batch, decode_batch(batch), np.ones(1, np.int64), np.zeros(1))
    table.flush_all("signal")
    [sess] = table.take_done()
    assert sess.end_reason == "signal" and sess.pos.tolist() == [0]


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_session_syn_after_fin_reuses_the_port(batch_size):
    packets = handshake() + [
        (0.5, tcp(A, B, 40000, 80, FIN | ACK, seq=28)),
        (0.6, tcp(B, A, 80, 40000, ACK)),
    ] + handshake(t=1.0, isn=90_000)  # fmt: skip
    records, _ = run(packets, batch_size=batch_size)
    assert [r["network"]["packets"] for r in records] == [6, 4]
    assert records[0]["fpc"]["end_reason"] == "tcp_close"


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_session_late_own_syn_after_fin_stays_in_the_session(batch_size):
    # tcp-reassembly-synthetic: the client's SYN (seq 30000) is the capture's
    # last packet, after the FIN exchange; the SYN-ACK acked 30001.
    segments = [(t, dpkt.ethernet.Ethernet(frame).data.data, frame)
                for t, frame in corpus_frames("tcp-reassembly-synthetic")]  # fmt: skip
    packets = [(t, frame) for t, seg, frame in segments
               if {seg.sport, seg.dport} == {40009, 80}]  # fmt: skip
    assert dpkt.ethernet.Ethernet(packets[-1][1]).data.data.flags == SYN
    [r], _ = run(packets, batch_size=batch_size)
    assert r["network"]["packets"] == 8 and r["fpc"]["tcp"]["syn"] == 1
    assert r["source"]["port"] == 40009


def test_session_syn_with_the_sessions_isn_after_fin_is_not_port_reuse():
    packets = handshake(isn=500) + [
        (0.5, tcp(A, B, 40000, 80, FIN | ACK, seq=528)),
        (0.6, tcp(B, A, 80, 40000, FIN | ACK)),
        (0.7, tcp(A, B, 40000, 80, SYN, seq=500)),  # the same SYN, late
    ]  # fmt: skip
    records, _ = run(packets)
    assert [r["network"]["packets"] for r in records] == [7]


def test_session_past_max_app_states_is_counted_and_not_parsed():
    packets = handshake() + handshake(t=1.0, sport=40001)
    records, table = run(packets, SessionLimits(max_app_states=1))
    assert [r.get("url", {}).get("domain") for r in records] == [["x"], None]
    assert table.counters["app_skipped"] == 1
    assert sum(r["network"]["packets"] for r in records) == 8


def test_session_seen_mid_stream_takes_the_well_known_port_as_server():
    records, _ = run([(0.0, tcp(B, A, 80, 40000, PSH | ACK, b"HTTP/1.1 200 OK\r\n"))])
    assert (records[0]["source"]["port"], records[0]["destination"]["port"]) == (
        40000,
        80,
    )
    assert records[0]["destination"]["packets"] == 1


def test_session_parser_error_is_counted_and_ends_only_that_session_parser():
    hello = (b"\x16\x03\x01\x00\x33\x01\x00\x00\x2f\x03\x03" + b"\x00" * 32
             + b"\x00\x00\x02\x13\x01\x01\x00\x00\x04\x00\x17\x00\x00")  # fmt: skip
    not_tls = b"\x00\x06\x00\x04\x00"
    broken = [
        (0.0, tcp(A, B, 40000, 443, SYN, seq=0)),
        (0.1, tcp(A, B, 40000, 443, PSH | ACK, hello, seq=1)),
        (0.15, tcp(B, A, 443, 40000, SYN | ACK, seq=0)),
        (0.2, tcp(B, A, 443, 40000, PSH | ACK, not_tls, seq=1)),
    ]
    fine = [(0.3, tcp(A, B, 40001, 443, SYN, seq=0)),
            (0.4, tcp(A, B, 40001, 443, PSH | ACK, hello, seq=1))]  # fmt: skip
    records, table = run(broken + fine)
    assert table.counters["app_errors"] == 1
    by_port = {r["source"]["port"]: r for r in records}
    # the broken session keeps what its parser read before the error
    assert (
        by_port[40000]["tls"]["client"]["ja3"] == by_port[40001]["tls"]["client"]["ja3"]
    )


def test_session_record_of_arp_frames_has_macs_and_no_ip_fields():
    arp = b"\0\x01\x08\x00\x06\x04\0\x01" + b"\0" * 20
    request = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + arp
    [r], _ = run([(0.0, request), (0.5, request)])
    assert r["fpc"]["protocols"] == ["arp"] and r["fpc"]["ethertype"] == 0x0806
    assert "ip" not in r["source"] and "port" not in r["destination"]
    assert r["source"]["mac"] == ["02-02-02-02-02-02"]
    assert r["destination"]["mac"] == ["FF-FF-FF-FF-FF-FF"]
    assert (r["source"]["packets"], r["network"]["packets"]) == (2, 2)
    assert "community_id" not in r["network"] and "transport" not in r["network"]


def http_exchange(sport, body, t=0.0, mss=100, seq_c=1000, seq_s=5000, reorder=False):
    """A keep-alive HTTP session: a GET, a response of `body` cut into `mss`-byte
    TCP segments, a second GET and its empty reply, then FIN."""
    req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    out = [(A, B, sport, 80, SYN, b"", seq_c), (B, A, 80, sport, SYN | ACK, b"", seq_s)]
    c, s = seq_c + 1, seq_s + 1
    out.append((A, B, sport, 80, PSH | ACK, req, c))
    c += len(req)
    resp = head + body
    segs = [
        (B, A, 80, sport, ACK, resp[i : i + mss], s + i)
        for i in range(0, len(resp), mss)
    ]
    if reorder:  # the second segment comes late: the stream holds the later ones
        segs.insert(3, segs.pop(1))
    out += segs
    s += len(resp)
    req2 = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
    out.append((A, B, sport, 80, PSH | ACK, req2, c))
    c += len(req2)
    tail = b"HTTP/1.1 304 Not Modified\r\n\r\n"
    out.append((B, A, 80, sport, PSH | ACK | FIN, tail, s))
    out.append((A, B, sport, 80, ACK | FIN, b"", c))
    return [(t + i * 0.001, tcp(*p[:5], p[5], seq=p[6])) for i, p in enumerate(out)]


def _app_view(records):
    keep = ("http", "fpc")
    return sorted(
        (r["source"]["port"], repr({k: r.get(k) for k in keep}), repr(r["network"]))
        for r in records
    )


@pytest.mark.parametrize("reorder", [False, True])
def test_session_segments_in_a_row_are_parsed_as_one_chunk_alike(reorder, monkeypatch):
    """Several sessions interleaved in one batch give the same records as one
    packet per batch, while the in-order runs reach the parsers joined."""
    body = bytes(range(256)) * 12
    sessions = [http_exchange(41000 + i, body, t=i * 0.0005, reorder=reorder)
                for i in range(3)]  # fmt: skip
    packets = sorted((p for s in sessions for p in s), key=lambda p: p[0])
    feeds: list[int] = []
    real_feed = AppState.feed

    def counting_feed(self, direction, payload, seq, flags):
        feeds.append(len(payload))
        real_feed(self, direction, payload, seq, flags)

    monkeypatch.setattr(AppState, "feed", counting_feed)
    one_by_one, _ = run(packets, batch_size=1)
    singles = len(feeds)
    feeds.clear()
    together, _ = run(packets, batch_size=1000)
    assert _app_view(together) == _app_view(one_by_one)
    assert together[0]["fpc"]["http"]["body"]["md5"]  # the body was hashed
    assert len(feeds) < singles / 3  # the 40 body segments of each went as runs


def test_session_run_bounds_follow_sequence_direction_and_flags():
    rows = np.zeros(7, dtype=DECODED)
    rows["proto"] = 6
    rows["payload_len"] = 10
    rows["seq"] = [0xFFFFFFFA, 4, 14, 24, 34, 44, 54]  # wraps after the first
    rows["tcp_flags"] = [ACK, ACK, ACK | FIN, ACK, SYN, ACK, ACK]
    serials = np.array([1, 1, 1, 1, 1, 1, 2], dtype=np.uint64)
    dirs = np.array([0, 0, 0, 0, 0, 1, 1], dtype=np.uint8)
    # FIN ends a run, SYN starts one, so do a direction and a session change.
    assert _run_bounds(rows, serials, dirs).tolist() == [0, 3, 4, 5, 6, 7]
    rows["seq"][1:3] = [5, 15]  # a gap of one byte before the second
    assert _run_bounds(rows, serials, dirs).tolist() == [0, 1, 3, 4, 5, 6, 7]


def test_session_stops_offering_a_direction_the_parsers_declined(monkeypatch):
    # A response body far longer than the parsers' share of the session: the
    # table stops offering the server's packets once the head announcing it is
    # read, and still offers the client's (its next request is parsed).
    from fpc.appl.http import HttpParser

    fed = [0, 0]  # bytes
    feed = HttpParser.feed

    def counting_feed(self, direction, data):
        fed[direction] += len(data)
        feed(self, direction, data)

    monkeypatch.setattr(HttpParser, "feed", counting_feed)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
    packets = handshake()
    t, seq = 1.0, 1
    packets.append((t, tcp(B, A, 80, 40000, ACK, head, seq=seq)))
    seq += len(head)
    for _ in range(100):
        t += 0.001
        packets.append((t, tcp(B, A, 80, 40000, ACK, b"z" * 1400, seq=seq)))
        seq += 1400
    request = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
    packets.append((t + 0.1, tcp(A, B, 40000, 80, PSH | ACK, request, seq=28)))
    (record,), _ = run(packets, batch_size=1)  # the table decides per batch
    assert fed[1] == len(head)
    assert record["url"]["path"] == ["/", "/next"]
    assert "body" not in record["fpc"].get("http", {})
