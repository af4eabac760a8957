"""UDP sessions no classifier recognized: parked as a count, classified on."""

from __future__ import annotations

import dpkt
import numpy as np

from fpc.appl import new_app_state
from fpc.appl import state as state_module
from fpc.appl.registry import Parser, ParserSpec, Verdict
from fpc.appl.state import MAX_UDP_CLASSIFY
from fpc.decode import decode_batch
from fpc.packets import PacketBatch
from fpc.parked import SERIAL_INDEX_BITS, ParkedProbes
from fpc.session import SessionLimits, SessionTable
from fpc.spi import build_record

NS = 1_000_000_000
A, B = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
JUNK = b"\x01\x02\x03\x04\x05\x06\x07\x08\x09"  # no classifier claims it
DNS_QUERY = bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="a.example", type=1)]))


def udp(sport: int, dport: int, payload: bytes, src: bytes = A) -> bytes:
    seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    ip = dpkt.ip.IP(src=src, dst=B, p=17, data=seg)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def tcp(sport: int, dport: int, flags: int, payload: bytes = b"", seq: int = 1):
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, data=payload)
    ip = dpkt.ip.IP(src=A, dst=B, p=6, data=seg)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def feed(table: SessionTable, frames: list[bytes], batch_size: int = 1000) -> None:
    for start in range(0, len(frames), batch_size):
        chunk = frames[start : start + batch_size]
        rows = [((start + i) * 1000, len(f), f) for i, f in enumerate(chunk)]
        batch = PacketBatch.from_list(rows, 1)
        n = len(batch)
        files, pos = np.ones(n, dtype=np.int64), np.arange(start, start + n)
        table.add_batch(batch, decode_batch(batch), files, pos)


def records(table: SessionTable) -> list[dict]:
    table.flush_all()
    return [build_record("t", s) for s in table.take_done()]


def test_parked_unrecognized_udp_sessions_hold_no_app_state():
    table = SessionTable(SessionLimits(), app_layer=True)
    feed(table, [udp(20000 + i, 40000, JUNK) for i in range(500)])
    assert len(table) == 500
    assert table.counters["app_states"] == 0
    assert table.counters["app_skipped"] == 0


def test_parked_session_is_recognized_by_a_later_datagram():
    for batch_size in (1, 1000):
        table = SessionTable(SessionLimits(), app_layer=True)
        feed(table, [udp(20000, 40000, JUNK), udp(20000, 40000, DNS_QUERY)], batch_size)
        [rec] = records(table)
        assert rec["fpc"]["protocols"] == ["udp", "dns"]
        assert rec["dns"]["question"]["name"] == ["a.example"]


def test_parked_session_stops_classifying_after_max_udp_classify():
    for junk in (MAX_UDP_CLASSIFY - 1, MAX_UDP_CLASSIFY):
        table = SessionTable(SessionLimits(), app_layer=True)
        feed(table, [udp(20000, 40000, JUNK)] * junk + [udp(20000, 40000, DNS_QUERY)])
        [rec] = records(table)
        found = rec["fpc"]["protocols"] == ["udp", "dns"]
        assert found == (junk < MAX_UDP_CLASSIFY), junk


def test_parked_udp_past_max_app_states_is_parked_and_a_claimed_one_skipped():
    table = SessionTable(SessionLimits(max_app_states=1), app_layer=True)
    http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    feed(table, [tcp(30000, 80, dpkt.tcp.TH_SYN, seq=0),
                 tcp(30000, 80, dpkt.tcp.TH_PUSH, http)])  # fmt: skip
    assert table.counters["app_states"] == 1  # HTTP waits for its response
    feed(table, [udp(20000, 40000, JUNK), udp(20001, 40000, DNS_QUERY)])
    assert table.counters["app_states"] == 1
    assert table.counters["app_skipped"] == 1  # the DNS session, not the junk one
    by_port = {r["source"]["port"]: r for r in records(table)}
    assert by_port[30000]["url"]["domain"] == ["x"]
    assert by_port[20001]["fpc"]["protocols"] == ["udp"]


def test_parked_state_only_for_udp_content_no_classifier_wants():
    junk = new_app_state("udp", 20000, 40000)
    junk.feed(0, JUNK, None, 0)
    assert junk.parked and junk.tried == 1 and junk.wants_more
    hinted = new_app_state("udp", 20000, 53)  # a registered port changes nothing
    hinted.feed(0, JUNK, None, 0)
    assert hinted.parked
    tcp_state = new_app_state("tcp", 20000, 40000)
    tcp_state.feed(0, JUNK, 1, 0)
    assert not tcp_state.parked
    resumed = new_app_state("udp", 20000, 40000, tried=MAX_UDP_CLASSIFY - 1)
    resumed.feed(0, JUNK, None, 0)
    assert not resumed.wants_more


def test_parked_probes_by_slot_forget_a_reused_slot():
    probes = ParkedProbes()
    first = (1 << SERIAL_INDEX_BITS) | 5
    reuse = (2 << SERIAL_INDEX_BITS) | 5
    far = (3 << SERIAL_INDEX_BITS) | 5000
    probes.park(first, 3)
    probes.park(far, 300)
    assert probes.tried(first) == 3 and probes.tried(far) == 255
    assert probes.tried(reuse) == 0 and probes.tried(7) == 0
    assert probes.memory_bytes >= 5001 * 9


def test_parked_junk_is_not_replayed_to_the_parser_that_matches_later():
    table = SessionTable(SessionLimits(), app_layer=True)
    feed(table, [udp(20000, 53, JUNK), udp(20000, 53, DNS_QUERY)])
    [rec] = records(table)
    assert rec["dns"]["question"]["name"] == ["a.example"]
    assert table.counters["app_errors"] == 0


def test_parked_datagram_a_classifier_said_more_for_is_kept_and_replayed(monkeypatch):
    fed: list[bytes] = []

    class Recorder(Parser):
        name = "recorder"

        def feed(self, direction: int, data: bytes) -> None:
            fed.append(data)

    def classify(transport: str, direction: int, data: bytes, hint: bool) -> Verdict:
        return {b"go": Verdict.YES, b"hm": Verdict.MORE}.get(data, Verdict.NO)

    spec = ParserSpec("recorder", frozenset({"udp"}), frozenset(), classify, Recorder)
    monkeypatch.setattr(state_module, "specs_for", lambda transport: (spec,))
    monkeypatch.setattr(state_module, "pending_pair", lambda t: ((spec,), (spec,)))
    state = new_app_state("udp", 20000, 40000)
    for data in (b"no", b"hm", b"no"):
        state.feed(0, data, None, 0)
    assert not state.parked
    state.feed(0, b"go", None, 0)
    assert fed == [b"hm", b"go"] and state.protocols() == ["recorder"]
