"""RDP negotiation against Arkime's session (behind SOCKS5), TLS after it,
and damaged connection requests."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state


def test_rdp_cookie_and_protocols_match_arkime() -> None:
    (body,) = arkime_sessions("socks5-rdp", "rdp")
    state = run_session("socks5-rdp", body)
    got, want = state.fields(), body["rdp"]
    assert state.protocols() == ["socks", "rdp"] and state.errors == 0
    assert got["fpc.rdp.requested_protocols"] == want["requestedProtocols"]
    assert got["fpc.rdp.selected_protocol"] == want["selectedProtocol"]
    assert got["fpc.rdp.cookie"] == ["XXX"]  # "Cookie: mstshash=XXX" on the wire


def _tpkt(x224: bytes) -> bytes:
    return struct.pack("!BBH", 3, 0, 4 + len(x224)) + x224


def _x224(code: int, neg: bytes, cookie: bytes = b"") -> bytes:
    body = bytes([code]) + bytes(5) + cookie + neg
    return bytes([len(body)]) + body


def test_rdp_tls_selected_hands_the_session_to_tls() -> None:
    (tls_body,) = [b for b in arkime_sessions("smtp-starttls", "tls")]
    hello = next(
        p
        for d, p, _, _ in session_packets("smtp-starttls", tls_body)
        if p[:2] == b"\x16\x03"
    )
    request = _tpkt(
        _x224(0xE0, struct.pack("<BBHI", 1, 0, 8, 3), b"Cookie: mstshash=bob\r\n")
    )
    confirm = _tpkt(_x224(0xD0, struct.pack("<BBHI", 2, 0, 8, 1)))
    state = new_app_state("tcp", 40000, 3389)
    state.feed(0, request, 1000, 0x18)
    state.feed(1, confirm, 5000, 0x18)
    state.feed(0, hello, 1000 + len(request), 0x18)
    got = state.fields()
    assert state.protocols() == ["rdp", "tls"]
    assert got["fpc.rdp.requested_protocols"] == ["tls", "hybrid"]
    assert got["fpc.rdp.selected_protocol"] == ["tls"]
    assert got["fpc.rdp.cookie"] == ["bob"]
    assert got["tls.client.ja4"] == tls_body["tls"]["ja4"]


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=60), flips=st.lists(st.integers(0, 59)))
def test_rdp_damaged_request_is_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    data = bytearray(
        _tpkt(_x224(0xE0, struct.pack("<BBHI", 1, 0, 8, 3), b"Cookie: mstshash=b\r\n"))
    )[:cut]
    for i in flips:
        if i < len(data):
            data[i] ^= 0x55
    state = new_app_state("tcp", 40000, 3389)
    state.feed(0, bytes(data), 1000, 0x18)
    assert state.errors <= 1
