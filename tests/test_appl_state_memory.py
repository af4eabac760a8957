"""What one session's app-layer state holds, measured with tracemalloc.

A million sessions may be active: an unclaimed UDP session must hold nothing
(it is parked), a claimed one only what its parsers have read so far.
"""

from __future__ import annotations

import gc
import tracemalloc

import dpkt
import pytest

from fpc.appl import new_app_state
from fpc.appl.stream import TCP_SYN

STATES = 200  # states measured together, so the mean is stable
DNS_QUERY = bytes(dpkt.dns.DNS(id=7, qd=[dpkt.dns.DNS.Q(name="a.example", type=1)]))
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
HTTP_GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"

# (transport, client port, server port, payloads from the client, byte budget)
CASES = {
    "udp unclaimed, parked": ("udp", 40000, 40001, [b"\x01" * 9], 0),
    "udp dns query": ("udp", 40000, 53, [DNS_QUERY], 1400),
    "tcp http request": ("tcp", 40000, 80, [HTTP_GET], 2400),
    "tcp http2 preface": ("tcp", 40000, 80, [H2_PREFACE], 1800),
}


def _mean_bytes(transport: str, sport: int, dport: int, payloads: list[bytes]) -> float:
    """Mean bytes held per state; a parked state counts as none (dropped)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(STATES):
            state = new_app_state(transport, sport, dport)
            seq = 1
            if transport == "tcp":
                state.feed(0, b"", 0, TCP_SYN)
            for payload in payloads:
                state.feed(0, payload, seq if transport == "tcp" else None, 0)
                seq += len(payload)
            if not state.parked:
                kept.append(state)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / STATES
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("case", CASES)
def test_app_state_of_one_session_stays_small(case: str) -> None:
    transport, sport, dport, payloads, budget = CASES[case]
    held = _mean_bytes(transport, sport, dport, payloads)
    assert held <= budget + 16, f"{case}: {held:.0f} bytes per session"
