"""fpc._fastpath.SessionTable driven directly: hand-built packets through
decode_batch, the records take() returns, the listing of app-layer packets,
the bounds on memory, the argument checks, and packet conservation under
random packet sequences."""

from __future__ import annotations

import threading

import dpkt
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_session import ACK, FIN, PSH, RST, SYN, A, B, tcp, udp

from fpc import _fastpath
from fpc.decode import DECODED, decode_batch
from fpc.packets import PacketBatch
from fpc.session import ENDED, POSITION

NS = 1_000_000_000
IDLE, TCP_CLOSE, SEGMENT, EVICTED, FLUSH = 1, 2, 3, 4, 5
C = b"\x0a\x00\x00\x03"


def table(**limits):
    limits.setdefault("seed", 7)
    return _fastpath.SessionTable(**limits)


class Feeder:
    """Adds (seconds, frame) lists in batches; packet position = global index."""

    def __init__(self, t):
        self.t = t
        self.added = 0
        self.wirelen: list[int] = []

    def add(self, packets):
        batch = PacketBatch.from_list([(int(s * NS), len(f), f) for s, f in packets], 1)
        n = len(batch)
        files = np.ones(n, dtype=np.int64)
        pos = np.arange(self.added, self.added + n, dtype=np.int64)
        self.added += n
        self.wirelen += batch.wirelen.tolist()
        index = np.empty(n, dtype=np.int64)
        serial = np.empty(n, dtype=np.uint64)
        dirs = np.empty(n, dtype=np.uint8)
        dec = decode_batch(batch)
        k = self.t.add(dec, batch.ts_ns, batch.wirelen, batch.caplen, files, pos,
                       index, serial, dirs)  # fmt: skip
        return index[:k].tolist(), serial[:k].tolist(), dirs[:k].tolist()


def take(t):
    """[(record, positions of its packets)] of what the table ended."""
    raw, raw_pos = t.take()
    rec = np.frombuffer(raw, dtype=ENDED)
    pos = np.frombuffer(raw_pos, dtype=POSITION)
    out, start = [], 0
    for r in rec:
        n = int(r["npos"])
        out.append((r, pos[start : start + n]))
        start += n
    assert start == len(pos)
    return out


def conversation(t0=0.0, sport=40000, isn=0):
    """A request and its response; the client's data starts at isn + 1."""
    return [
        (t0, tcp(A, B, sport, 80, SYN, seq=isn)),
        (t0 + 0.1, tcp(B, A, 80, sport, SYN | ACK, seq=0)),
        (t0 + 0.2, tcp(A, B, sport, 80, ACK, seq=isn + 1)),
        (t0 + 0.3, tcp(A, B, sport, 80, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n",
                       seq=isn + 1)),
        (t0 + 0.4, tcp(B, A, 80, sport, PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\n")),
    ]  # fmt: skip


def test_table_counts_per_side_in_key_orientation():
    t = table()
    Feeder(t).add(conversation())
    t.flush()
    [(r, pos)] = take(t)
    assert r["end_reason"] == FLUSH and r["segment"] == 0
    assert r["client"] == 0  # A (10.0.0.1) is the lower endpoint and sent the SYN
    assert r["packets"].tolist() == [3, 2]
    assert r["payload"].tolist() == [18, 19]
    assert r["tcp"].tolist() == [1, 1, 1, 2, 0, 0, 0]
    assert pos["pos"].tolist() == [0, 1, 2, 3, 4]
    assert pos["file"].tolist() == [1] * 5
    assert r["first_ts"] == 0 and r["last_ts"] == int(0.4 * NS)
    key = r["key"].tobytes()
    assert key[36] == 6 and key[37] == 4
    # each side: the MAC its packets came from and the one the other's went to
    assert r["nmac"].tolist() == [2, 2]
    assert {m.tobytes() for m in r["macs"][0, :2]} == {b"\x02" * 6, b"\x04" * 6}
    assert r["nttl"].tolist() == [1, 1]
    assert len(t) == 0


def one_record(packets):
    t = table()
    Feeder(t).add(packets)
    t.flush()
    [(r, _)] = take(t)
    return r


def data(src, dst, sport, dport, seq, payload, flags=ACK):
    return tcp(src, dst, sport, dport, flags, payload, seq=seq)


def test_table_tcp_payload_counts_retransmitted_bytes_once():
    r = one_record([
        (0.0, tcp(A, B, 5000, 80, SYN, seq=99)),
        (0.1, tcp(B, A, 80, 5000, SYN | ACK, seq=499)),
        (0.2, data(A, B, 5000, 80, 100, b"x" * 10)),
        (0.3, data(A, B, 5000, 80, 100, b"x" * 10)),  # retransmitted
        (0.4, data(A, B, 5000, 80, 105, b"x" * 10)),  # overlaps by 5
        (0.5, data(B, A, 80, 5000, 500, b"y" * 7)),
    ])  # fmt: skip
    assert r["payload"].tolist() == [15, 7]


def test_table_tcp_payload_counts_reordered_bytes_when_the_gap_fills():
    r = one_record([
        (0.0, tcp(A, B, 5000, 80, SYN, seq=99)),
        (0.1, data(A, B, 5000, 80, 110, b"b" * 10)),  # ahead of a gap
        (0.2, data(A, B, 5000, 80, 100, b"a" * 10)),  # fills it
        (0.3, data(A, B, 5000, 80, 110, b"b" * 10)),  # retransmitted
    ])  # fmt: skip
    assert r["payload"].tolist() == [20, 0]


def test_table_tcp_payload_without_any_syn_counts_nothing():
    r = one_record([(0.0, data(A, B, 5000, 80, 100, b"x" * 10))])
    assert r["payload"].tolist() == [0, 0] and r["packets"].tolist() == [1, 0]


def test_table_tcp_payload_side_without_syn_starts_at_its_first_packet():
    r = one_record([
        (0.0, tcp(A, B, 5000, 80, SYN, seq=99)),  # the SYN-ACK was not captured
        (0.1, data(A, B, 5000, 80, 100, b"x" * 4)),
        (0.2, data(B, A, 80, 5000, 700, b"y" * 6)),
        (0.3, data(B, A, 80, 5000, 700, b"y" * 6)),
    ])  # fmt: skip
    assert r["payload"].tolist() == [4, 6]


def test_table_tcp_payload_client_starts_at_ack_of_syn_ack_when_syn_missed():
    syn_ack = dpkt.tcp.TCP(sport=80, dport=5000, flags=SYN | ACK, seq=499, ack=100)
    r = one_record([
        (0.0, ip_frame(B, A, syn_ack)),
        (0.1, data(A, B, 5000, 80, 100, b"x" * 4)),
        (0.2, data(A, B, 5000, 80, 100, b"x" * 4)),
    ])  # fmt: skip
    assert r["payload"].tolist() == [4, 0]


def test_table_tcp_data_on_rst_is_not_payload():
    r = one_record([
        (0.0, tcp(A, B, 5000, 80, SYN, seq=99)),
        (0.1, data(A, B, 5000, 80, 100, b"bye", RST | ACK)),
    ])  # fmt: skip
    assert r["payload"].tolist() == [0, 0]


def test_table_icmp_payload_counts_its_8_byte_header():
    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"p" * 20))
    r = one_record([(0.0, ip_frame(A, B, echo, proto=1))])
    assert r["payload"].tolist() == [28, 0]


def test_table_unparsed_ip_protocol_has_no_payload():
    r = one_record([(0.0, ip_frame(A, B, b"\x01" * 40, proto=89))])  # OSPF
    assert r["payload"].tolist() == [0, 0] and r["bytes"][0] > 40


def test_table_session_on_two_vlans_is_one_with_both_ids():
    plain = bytes(dpkt.ip.IP(src=A, dst=B, p=17, data=dpkt.udp.UDP(sport=1, dport=2)))
    tagged = [vlan_frame(vid, plain) for vid in (300, 50, 300)]
    r = one_record([(0.0, tagged[0]), (0.1, tagged[1]), (0.2, tagged[2])])
    assert r["packets"].tolist() == [3, 0]
    assert r["nvlan"].tolist() == [2, 0] and r["vlans"][0, :2].tolist() == [300, 50]


def test_table_packet_from_long_before_the_session_starts_another():
    t = table(udp_timeout_ns=60 * NS)
    Feeder(t).add([(1000.0, udp(A, B, 1, 2)), (1001.0, udp(B, A, 2, 1)),
                   (10.0, udp(A, B, 1, 2))])  # fmt: skip
    t.flush()
    got = sorted((r["first_ts"] // NS, r["packets"].sum()) for r, _ in take(t))
    assert got == [(10, 1), (1000, 2)]


def test_table_non_ip_frames_make_sessions_by_mac_pair():
    arp = b"\0\x01\x08\x00\x06\x04\0\x01" + b"\0" * 20
    ask = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + arp
    answer = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x06" + arp
    back = b"\x04" * 6 + b"\x02" * 6 + b"\x08\x06" + arp
    t = table()
    Feeder(t).add([(0.0, ask), (0.1, answer), (0.2, back)])
    t.flush()
    records = sorted(
        (r["packets"].tolist(), r["key"].tobytes()[37]) for r, _ in take(t)
    )
    assert records == [([1, 0], 0), ([1, 1], 0)]  # IP version 0: no IP


def ip_frame(src, dst, l4, proto=6):
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, data=l4)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def vlan_frame(vid, ip_bytes):
    tag = (vid & 0x0FFF).to_bytes(2, "big") + b"\x08\x00"
    return b"\x04" * 6 + b"\x02" * 6 + b"\x81\x00" + tag + ip_bytes


def test_table_client_is_receiver_of_syn_ack_and_higher_side():
    t = table()
    Feeder(t).add([(0.0, tcp(C, A, 80, 5000, SYN | ACK))])
    t.flush()
    [(r, _)] = take(t)
    assert r["client"] == 0  # A, the lower endpoint, received the SYN-ACK
    # a UDP session started by the higher endpoint
    Feeder(t).add([(1.0, udp(C, A, 9, 9))])
    t.flush()
    [(r, _)] = take(t)
    assert r["client"] == 1


def test_table_idle_gap_inside_one_batch_splits_the_session():
    t = table(udp_timeout_ns=60 * NS)
    Feeder(t).add(
        [(0.0, udp(A, B, 1, 2)), (30.0, udp(B, A, 2, 1)), (100.0, udp(A, B, 1, 2))]
    )
    ended = take(t)
    assert [(int(r["end_reason"]), int(r["npos"])) for r, _ in ended] == [(IDLE, 2)]
    t.expire(200 * NS)
    assert [(int(r["end_reason"]), int(r["npos"])) for r, _ in take(t)] == [(IDLE, 1)]
    assert len(t) == 0


def test_table_fin_both_ways_ends_after_the_linger_only():
    t = table(tcp_close_ns=5 * NS)
    f = Feeder(t)
    f.add(conversation() + [(1.0, tcp(A, B, 40000, 80, FIN | ACK))])
    t.expire(100 * NS)  # one FIN only: half closed, still within the TCP timeout
    assert take(t) == [] and len(t) == 1
    f.add([(1.1, tcp(B, A, 80, 40000, FIN | ACK))])
    t.expire(int(5.5 * NS))
    assert take(t) == []
    t.expire(int(6.2 * NS))
    [(r, _)] = take(t)
    assert r["end_reason"] == TCP_CLOSE and r["tcp"][4] == 2


def test_table_bare_syn_after_rst_starts_a_new_session():
    t = table()
    f = Feeder(t)
    f.add(conversation() + [(0.5, tcp(A, B, 40000, 80, RST, seq=19))])
    f.add(conversation(t0=1.0, isn=90_000))  # a new connection: a new ISN
    t.flush()
    ended = take(t)
    assert [(int(r["end_reason"]), int(r["npos"])) for r, _ in ended] == [
        (TCP_CLOSE, 6),
        (FLUSH, 5),
    ]
    assert ended[0][0]["serial"] != ended[1][0]["serial"]


def test_table_retransmitted_syn_stays_in_its_session():
    t = table()
    Feeder(t).add([(0.0, tcp(A, B, 1, 2, SYN)), (1.0, tcp(A, B, 1, 2, SYN))])
    t.flush()
    assert [int(r["npos"]) for r, _ in take(t)] == [2]


def test_table_segments_by_packet_count_keep_the_serial():
    t = table(segment_packets=4)
    Feeder(t).add([(float(i), udp(A, B, 7, 8)) for i in range(10)])
    t.flush()
    ended = take(t)
    assert [int(r["npos"]) for r, _ in ended] == [4, 4, 2]
    assert [int(r["segment"]) for r, _ in ended] == [0, 1, 2]
    assert [int(r["end_reason"]) for r, _ in ended] == [SEGMENT, SEGMENT, FLUSH]
    assert len({int(r["serial"]) for r, _ in ended}) == 1
    assert len({int(r["session_ts"]) for r, _ in ended}) == 1
    assert [int(r["first_ts"]) // NS for r, _ in ended] == [0, 4, 8]
    assert np.concatenate([p["pos"] for _, p in ended]).tolist() == list(range(10))
    assert t.counters()["segments"] == 2


def test_table_segments_by_age():
    t = table(segment_age_ns=10 * NS, udp_timeout_ns=100 * NS)
    Feeder(t).add([(float(i * 4), udp(A, B, 7, 8)) for i in range(6)])
    t.flush()
    assert [int(r["npos"]) for r, _ in take(t)] == [4, 2]  # 0..12 s is past 10 s


def test_table_evicts_the_longest_idle_at_max_sessions():
    t = table(max_sessions=3)
    f = Feeder(t)
    f.add(
        [(0.0, udp(A, B, 1, 53)), (0.1, udp(A, B, 2, 53)), (0.2, tcp(A, B, 3, 80, SYN))]
    )
    f.add([(0.3, udp(A, B, 1, 53))])  # port 1 is now the most recent
    f.add([(0.4, udp(A, B, 4, 53))])
    [(r, _)] = take(t)
    assert r["end_reason"] == EVICTED
    assert int.from_bytes(r["key"].tobytes()[32:34], "big") == 2
    assert len(t) == 3 and t.counters()["evicted"] == 1


def test_table_lists_payload_packets_for_parsers_until_app_done():
    t = table()
    f = Feeder(t)
    handshake = [
        (0.0, tcp(A, B, 40000, 80, SYN, seq=1000)),
        (0.1, tcp(B, A, 80, 40000, SYN | ACK, seq=5000)),
        (0.2, tcp(A, B, 40000, 80, ACK, seq=1001)),
    ]
    # No payload yet: nothing listed, the SYNs' sequence numbers are kept.
    assert f.add(handshake) == ([], [], [])
    index, serial, dirs = f.add(conversation()[3:] + [(0.5, tcp(B, A, 80, 40000, FIN))])
    assert index == [0, 1, 2]  # the payloads, then a FIN for the server's stream
    assert dirs == [0, 1, 1]
    assert len(set(serial)) == 1
    assert t.syn_seqs(serial[0]) == (1000, 5000)
    t.app_done(serial[0])
    index, _, _ = f.add([(0.6, tcp(A, B, 40000, 80, PSH | ACK, b"more"))])
    assert index == []


def test_table_syn_seqs_of_a_one_sided_start():
    t = table()
    f = Feeder(t)
    f.add([(0.0, tcp(B, A, 80, 40000, SYN | ACK, seq=77))])
    _, serial, dirs = f.add([(0.1, tcp(A, B, 40000, 80, PSH | ACK, b"x"))])
    assert dirs == [0] and t.syn_seqs(serial[0]) == (None, 77)
    assert t.syn_seqs(serial[0] + 1) == (None, None)


def test_table_app_budget_per_direction():
    t = table(app_bytes=100)
    f = Feeder(t)
    index, _, dirs = f.add([(i * 0.1, udp(A, B, 5, 6, b"x" * 60)) for i in range(3)]
                           + [(1.0, udp(B, A, 6, 5, b"y" * 10))])  # fmt: skip
    assert index == [0, 1, 3]  # 60 + 60 reaches 100; the other direction has its own
    assert dirs == [0, 0, 1]


def test_table_app_layer_off_or_icmp_lists_nothing():
    icmp = dpkt.icmp.ICMP(
        type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping")
    )
    ip = dpkt.ip.IP(src=A, dst=B, p=1, data=icmp)
    ip.len = len(bytes(ip))
    frame = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))
    t = table()
    index, _, _ = Feeder(t).add([(0.0, frame)])
    assert index == []
    t.flush()
    [(r, _)] = take(t)
    assert r["nicmp"] == 1 and r["icmp"][0].tolist() == [8, 0]
    t = table(app_layer=False)
    assert Feeder(t).add(conversation())[0] == []


def test_table_keeps_a_bounded_set_of_ttls_per_side():
    t = table()
    packets = []
    for i in range(20):
        frame = bytearray(udp(A, B, 1, 2))
        frame[14 + 8] = 10 + i  # IPv4 TTL (the decoder ignores the header checksum)
        packets.append((i * 0.1, bytes(frame)))
    Feeder(t).add(packets)
    t.flush()
    [(r, _)] = take(t)
    assert r["nttl"].tolist() == [8, 0]
    assert r["ttls"][0].tolist() == list(range(10, 18))


def test_table_caps_positions_held_by_cutting_the_longest_idle():
    t = table(max_positions=40, segment_packets=1000)
    f = Feeder(t)
    for rnd in range(10):
        f.add([(rnd + i * 0.01, udp(A, B, 1000 + i, 53)) for i in range(10)])
    assert t.counters()["position_cuts"] > 0
    ended = take(t)
    assert all(r["end_reason"] == SEGMENT for r, _ in ended)
    t.flush()
    ended += take(t)
    assert sum(int(r["npos"]) for r, _ in ended) == 100


def test_table_idle_session_costs_under_400_bytes():
    n = 200_000
    dec = np.zeros(n, dtype=DECODED)
    keys = np.zeros((n, 44), dtype=np.uint8)
    keys[:, :4] = np.arange(n, dtype=">u4").view(np.uint8).reshape(n, 4)
    keys[:, 36], keys[:, 37] = 17, 4
    dec["key"] = keys.view("S44").ravel()
    dec["proto"] = 17
    t = table()
    empty = t.counters()["memory_bytes"]
    ones = np.ones(n, dtype=np.uint32)
    out = (
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.uint64),
        np.empty(n, np.uint8),
    )
    t.add(dec, np.zeros(n, dtype=np.int64), ones, ones, np.zeros(n, dtype=np.int64),
          np.arange(n, dtype=np.int64), *out)  # fmt: skip
    assert len(t) == n
    per_session = (t.counters()["memory_bytes"] - empty) / n
    assert per_session < 400, per_session


# --- argument checks -----------------------------------------------------------


def arrays(n=1):
    batch = PacketBatch.from_list([(0, 60, udp(A, B, 1, 2))] * n, 1)
    dec = decode_batch(batch)
    ints = np.zeros(n, dtype=np.int64)
    out = [np.empty(n, np.int64), np.empty(n, np.uint64), np.empty(n, np.uint8)]
    return [dec, batch.ts_ns, batch.wirelen, batch.caplen, ints, ints.copy(), *out]


def test_table_rejects_limits_out_of_range():
    with pytest.raises(ValueError, match="max_sessions = 0 is out of range; pass 1 to"):
        table(max_sessions=0)
    with pytest.raises(ValueError, match="segment_packets = 0"):
        table(segment_packets=0)
    with pytest.raises(TypeError):
        _fastpath.SessionTable(3)


def test_table_add_rejects_bad_arrays():
    t = table()
    args = arrays(2)
    bad = list(args)
    bad[4] = np.array([1, 2**40], dtype=np.int64)
    with pytest.raises(ValueError, match="packet 1: file number 1099511627776 is out"):
        t.add(*bad)
    bad = list(args)
    bad[6] = np.empty(2, np.int64)
    bad[6].flags.writeable = False
    with pytest.raises(ValueError, match="app_index is read-only"):
        t.add(*bad)
    bad = list(args)
    bad[2] = np.zeros(3, dtype=np.uint32)
    with pytest.raises(ValueError, match="wirelen has 3 items"):
        t.add(*bad)
    bad = list(args)
    bad[0] = np.zeros(2, dtype=[("x", "u1")])
    with pytest.raises(ValueError, match="DECODED"):
        t.add(*bad)
    with pytest.raises(TypeError, match="add\\(\\) takes 9 arguments"):
        t.add(*args[:8])
    assert t.add(*args) == 2 and len(t) == 1


def test_table_app_done_of_unknown_serial_is_ignored():
    t = table()
    t.app_done(12345)
    t.app_done(2**64 - 1)
    with pytest.raises(OverflowError):
        t.app_done(-1)


# --- conservation under random sequences ---------------------------------------

FLOWS = [
    lambda fl, p: tcp(A, B, 1000, 80, fl, p),
    lambda fl, p: tcp(B, A, 80, 1000, fl, p),
    lambda fl, p: tcp(A, C, 1001, 443, fl, p),
    lambda fl, p: tcp(C, A, 443, 1001, fl, p),
    lambda fl, p: udp(A, B, 53, 53, p),
    lambda fl, p: udp(B, A, 53, 53, p),
    lambda fl, p: udp(C, B, 9, 99, p),
]
FLAGS = [SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST, 0]
GAPS = [0.0, 0.001, 0.5, 4.0, 30.0, 200.0]

packet_steps = st.tuples(
    st.integers(0, len(FLOWS) - 1),
    st.sampled_from(FLAGS),
    st.integers(0, 3),
    st.sampled_from(GAPS),
)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(packet_steps, min_size=1, max_size=60),
    cuts=st.lists(st.integers(1, 20), min_size=1, max_size=5),
    segment_packets=st.integers(1, 12),
    max_sessions=st.integers(1, 5),
    max_positions=st.integers(1, 30),
    expire_between=st.booleans(),
)
def test_table_random_sequences_conserve_packets(
    steps, cuts, segment_packets, max_sessions, max_positions, expire_between
):
    t = table(tcp_timeout_ns=100 * NS, udp_timeout_ns=20 * NS, tcp_close_ns=2 * NS,
              segment_age_ns=50 * NS, segment_packets=segment_packets,
              max_sessions=max_sessions, max_positions=max_positions)  # fmt: skip
    now, packets = 0.0, []
    for flow, flags, payload, gap in steps:
        now += gap
        packets.append((now, FLOWS[flow](flags, b"p" * payload)))
    f = Feeder(t)
    ended, start, k = [], 0, 0
    while start < len(packets):
        size = cuts[k % len(cuts)]
        f.add(packets[start : start + size])
        start, k = start + size, k + 1
        assert len(t) <= max_sessions
        if expire_between:
            t.expire(int(now * NS))
        ended += take(t)
    t.flush()
    ended += take(t)
    assert len(t) == 0
    everything = np.concatenate([p["pos"] for _, p in ended]).tolist()
    assert sorted(everything) == list(range(len(packets)))
    for r, p in ended:
        order = p["pos"].tolist()
        assert order == sorted(order)
        assert int(r["packets"].sum()) == int(r["npos"]) == len(order) > 0
        assert int(r["bytes"].sum()) == sum(f.wirelen[i] for i in order)
        assert int(r["npos"]) <= segment_packets


def test_table_extreme_times_and_empty_batches():
    t = table()
    f = Feeder(t)
    f.add([])
    big = 2**62 / NS
    f.add([(big, udp(A, B, 1, 2)), (-big, udp(A, B, 1, 2)), (big, udp(A, B, 1, 2))])
    f.add([])
    t.expire(-(2**63))
    t.expire(2**63 - 1)
    ended = take(t)
    assert sum(int(r["npos"]) for r, _ in ended) == 3 and len(t) == 0


def test_table_refuses_a_second_thread_while_adding():
    n = 300_000
    dec = np.zeros(n, dtype=DECODED)
    keys = np.zeros((n, 44), dtype=np.uint8)
    keys[:, :4] = np.arange(n, dtype=">u4").view(np.uint8).reshape(n, 4)
    dec["key"] = keys.view("S44").ravel()
    ones = np.ones(n, dtype=np.uint32)
    args = (dec, np.zeros(n, dtype=np.int64), ones, ones, np.zeros(n, dtype=np.int64),
            np.arange(n, dtype=np.int64), np.empty(n, np.int64), np.empty(n, np.uint64),
            np.empty(n, np.uint8))  # fmt: skip
    t = table()
    worker = threading.Thread(target=t.add, args=args)
    refused = False
    worker.start()
    while worker.is_alive() and not refused:
        try:
            t.take()
        except RuntimeError as exc:
            refused = "in use by another thread" in str(exc)
    worker.join()
    assert refused
    assert len(t) == n
