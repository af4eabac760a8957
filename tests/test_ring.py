"""The packet ring (csrc/ring.c through fpc.ring): order, wrap-around, drops,
close and drain, and a producer in another process."""

from __future__ import annotations

import multiprocessing
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fpc import _fastpath
from fpc.packets import PRECISION_NS, PRECISION_US, PacketBatch
from fpc.ring import PacketRing, RingClosed

FORK = multiprocessing.get_context("fork")


def make_batch(sizes: list[int], first: int = 0) -> PacketBatch:
    """Packet k (counting from `first`) is `size` bytes, each the byte k % 251."""
    packets = [
        (1_700_000_000_123_456_789 + k * 1000, size + 4, bytes([k % 251]) * size)
        for k, size in enumerate(sizes, start=first)
    ]
    return PacketBatch.from_list(packets, linktype=1, precision=PRECISION_NS)


def drain(ring: PacketRing, max_packets: int = 1000) -> list[bytes]:
    out = []
    while (batch := ring.pop(max_packets)) is not None and len(batch):
        out += [batch.packet(i) for i in range(len(batch))]
    return out


def test_ring_pop_gives_pcap_records_ready_for_a_file():
    ring = PacketRing(1 << 16, 64)
    batch = make_batch([60, 1500, 0, 77])
    batch.precision[1] = PRECISION_US
    assert ring.push(batch) == 4
    records, meta = ring.pop_records(10)
    for i in range(4):
        one = _fastpath.pack_records(
            batch.data, batch.offset[i : i + 1], batch.caplen[i : i + 1],
            batch.wirelen[i : i + 1], batch.ts_ns[i : i + 1], int(batch.precision[i]),
        )  # fmt: skip
        start = int(meta["offset"][i])
        assert records[start : start + len(one)] == one
    assert list(meta["precision"]) == [9, 6, 9, 9]
    assert list(meta["linktype"]) == [1] * 4
    assert list(meta["ts_ns"]) == list(batch.ts_ns)


def test_ring_wraps_around_keeping_order_and_whole_records():
    ring = PacketRing(1024, 16)
    sent, got = [], []
    rng = np.random.default_rng(7)
    k = 0
    for _round in range(200):
        sizes = [int(s) for s in rng.integers(0, 200, size=int(rng.integers(1, 6)))]
        batch = make_batch(sizes, first=k)
        pushed = ring.push(batch, drop=False)
        sent += [batch.packet(i) for i in range(pushed)]
        k += pushed
        popped = ring.pop_records(int(rng.integers(1, 8)))
        assert popped is not None
        records, meta = popped
        ends = meta["offset"] + 16 + meta["caplen"].astype(np.int64)
        assert len(records) == (int(ends[-1]) if len(meta) else 0)
        got += [records[o + 16 : e] for o, e in zip(meta["offset"], ends, strict=True)]
    got += drain(ring)
    assert k > 300  # the 1024-byte area went round many times
    assert got == sent
    assert ring.stats()["dropped"] == 0


def test_ring_full_counts_drops_and_keeps_the_first_packets():
    ring = PacketRing(4096, 8)
    batch = make_batch([100] * 12)
    assert ring.push(batch) == 8
    want = {"packets_in": 8, "packets_out": 0, "dropped": 4, "queued": 8,
            "bytes_queued": 8 * 116, "closed": 0}  # fmt: skip
    assert ring.stats() == want
    assert ring.push(batch, drop=False) == 0
    assert ring.stats()["dropped"] == 4
    assert drain(ring) == [batch.packet(i) for i in range(8)]
    big = make_batch([1500] * 4)  # bytes run out before slots
    assert ring.push(big) == 2
    assert ring.stats()["dropped"] == 6


def test_ring_close_lets_the_consumer_drain_then_end():
    ring = PacketRing(4096, 16)
    ring.push(make_batch([10, 20, 30]))
    assert len(ring.pop(1, timeout_s=0.0)) == 1
    ring.close()
    assert ring.stats()["closed"] == 1
    rest = ring.pop(10, timeout_s=5.0)
    assert rest is not None and list(rest.caplen) == [20, 30]
    assert ring.pop(10, timeout_s=5.0) is None
    assert ring.pop(10) is None


def test_ring_pop_times_out_empty_on_an_idle_ring():
    ring = PacketRing(4096, 16)
    started = time.monotonic()
    batch = ring.pop(10, timeout_s=0.2)
    assert batch is not None and len(batch) == 0
    assert 0.15 < time.monotonic() - started < 2


def test_ring_pop_waits_without_the_gil():
    ring = PacketRing(4096, 16)
    got: list[int] = []
    consumer = threading.Thread(target=lambda: got.append(len(ring.pop(10, 10.0))))
    consumer.start()
    time.sleep(0.1)  # the consumer now waits inside pop
    started = time.monotonic()
    ring.push(make_batch([64]))
    consumer.join(timeout=5)
    assert got == [1]
    assert time.monotonic() - started < 1


def test_ring_pop_lingers_for_a_full_batch_but_not_past_linger():
    ring = PacketRing(1 << 16, 64)
    ring.push(make_batch([64] * 3))
    later = threading.Timer(0.1, lambda: ring.push(make_batch([64] * 7, first=3)))
    later.start()
    full = ring.pop(10, timeout_s=1.0, linger_s=5.0)  # ends once 10 are there
    later.join()
    assert full is not None and len(full) == 10
    assert full.packet(9) == bytes([9]) * 64

    ring.push(make_batch([64] * 2))
    started = time.monotonic()
    short = ring.pop(10, timeout_s=1.0, linger_s=0.2)  # nobody adds more
    assert short is not None and len(short) == 2
    assert 0.15 < time.monotonic() - started < 2


def test_ring_pop_caps_the_records_bytes_of_a_batch():
    ring = PacketRing(1 << 16, 64)
    ring.push(make_batch([100, 100, 100, 500, 100]))
    record = 16 + 100
    first = ring.pop(10, max_bytes=2 * record + 50)  # room for two records only
    assert first is not None and len(first) == 2
    assert len(first.data) == 2 * record
    alone = ring.pop(10, max_bytes=2 * record + 50)  # 100 fits, 500 does not
    assert alone is not None and len(alone) == 1 and alone.packet(0) == bytes([2]) * 100
    big = ring.pop(10, max_bytes=100)  # a record larger than the cap comes alone
    assert big is not None and len(big) == 1 and big.packet(0) == bytes([3]) * 500
    rest = ring.pop(10, max_bytes=0)  # 0: no byte limit
    assert rest is not None and len(rest) == 1 and rest.packet(0) == bytes([4]) * 100


def test_ring_pop_stops_lingering_once_max_bytes_are_queued():
    ring = PacketRing(1 << 16, 64)
    ring.push(make_batch([1000] * 3))
    started = time.monotonic()
    batch = ring.pop(64, timeout_s=1.0, linger_s=10.0, max_bytes=2000)
    assert batch is not None and len(batch) == 1  # the second would pass 2000
    assert time.monotonic() - started < 2


def test_ring_pop_stops_lingering_when_the_producer_closes():
    ring = PacketRing(1 << 16, 64)
    ring.push(make_batch([64] * 2))
    threading.Timer(0.1, ring.close).start()
    started = time.monotonic()
    batch = ring.pop(10, timeout_s=1.0, linger_s=10.0)
    assert batch is not None and len(batch) == 2
    assert time.monotonic() - started < 2
    assert ring.pop(10) is None


def test_ring_push_with_a_blocked_producer_raises_when_the_consumer_is_gone():
    ring = PacketRing(1024, 4)
    ring.push(make_batch([10] * 4))
    with pytest.raises(RingClosed, match="consumer exited with 2 packets"):
        ring.push_all(make_batch([10] * 2), consumer_alive=lambda: False)
    with pytest.raises(ValueError, match="does not fit in a ring of 1024 bytes"):
        PacketRing(1024, 4).push_all(make_batch([600]), consumer_alive=lambda: True)


def test_ring_rejects_bad_geometry_and_foreign_buffers():
    with pytest.raises(ValueError, match="slots = 1000 must be a power of two"):
        PacketRing(4096, 1000)
    with pytest.raises(ValueError, match="data_bytes = 10 is out of range"):
        _fastpath.Ring.layout_size(10, 16)
    with pytest.raises(ValueError, match="does not hold a formatted ring"):
        _fastpath.Ring(bytearray(4096))
    with pytest.raises(ValueError, match="needs 1792"):
        _fastpath.Ring(bytearray(1000), 1024, 16)
    batch = make_batch([10, 10])
    with pytest.raises(ValueError, match="packet 1: offset"):
        _fastpath.Ring(bytearray(4096), 1024, 16).push(
            batch.data[:15], batch.offset, batch.caplen, batch.wirelen,
            batch.ts_ns, batch.linktype, batch.precision,
        )  # fmt: skip


def test_ring_attaches_to_a_ring_formatted_in_the_same_buffer():
    block = bytearray(_fastpath.Ring.layout_size(4096, 16))
    producer = _fastpath.Ring(block, 4096, 16)
    consumer = _fastpath.Ring(block)
    b = make_batch([33, 44])
    producer.push(b.data, b.offset, b.caplen, b.wirelen, b.ts_ns, b.linktype,
                  b.precision)  # fmt: skip
    records, meta = consumer.pop(10)
    assert len(meta) == 2 * 32 and len(records) == 33 + 44 + 32
    assert consumer.data_bytes == 4096 and consumer.slots == 16


def _produce(ring: PacketRing, batches: list[list[int]]) -> None:
    k = 0
    for sizes in batches:
        ring.push_all(make_batch(sizes, first=k), consumer_alive=lambda: True)
        k += len(sizes)
    ring.close()


@settings(max_examples=15, deadline=None)
@given(
    batches=st.lists(
        st.lists(st.integers(0, 1500), min_size=1, max_size=300), max_size=30
    ),
    max_pop=st.integers(1, 500),
)
def test_ring_carries_every_packet_from_another_process(batches, max_pop):
    ring = PacketRing(8192, 32)  # small: the producer waits for room often
    producer = FORK.Process(target=_produce, args=(ring, batches))
    producer.start()
    got = []
    while (batch := ring.pop(max_pop, timeout_s=10.0)) is not None:
        got += [batch.packet(i) for i in range(len(batch))]
    producer.join(timeout=10)
    assert producer.exitcode == 0
    sizes = [s for sizes in batches for s in sizes]
    assert got == [bytes([k % 251]) * s for k, s in enumerate(sizes)]
    stats = ring.stats()
    assert stats["packets_in"] == stats["packets_out"] == len(sizes)
    assert stats["dropped"] == 0
