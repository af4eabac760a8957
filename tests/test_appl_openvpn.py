"""OpenVPN: the TLS handshake of its control channel against Arkime's facts.

openvpn_synthetic holds two UDP sessions without tls-auth and two TCP
sessions with it; Arkime reports the TLS fields of each (its JA4 starts with
'q' for TLS carried over UDP, as fpc's does).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state

BODIES = arkime_sessions("openvpn_synthetic", "openvpn")


@pytest.mark.parametrize("body", BODIES, ids=[str(b["source"]["port"]) for b in BODIES])
def test_openvpn_tls_fields_match_arkime(body: dict) -> None:
    state = run_session("openvpn_synthetic", body)
    got, tls, (cert,) = state.fields(), body["tls"], body["cert"]
    assert state.protocols() == ["openvpn"] and state.errors == 0
    assert got["tls.client.ja3"] == tls["ja3"]
    assert got["tls.client.ja4"] == tls["ja4"]
    assert got["tls.server.ja3s"] == tls["ja3s"]
    assert got["tls.cipher"] == tls["cipher"]
    assert got["tls.server.x509.serial_number"] == [cert["serial"].upper()]
    when = datetime.fromtimestamp(cert["notAfter"] / 1000, UTC)
    assert got["tls.server.x509.not_after"] == [when.strftime("%Y-%m-%dT%H:%M:%SZ")]


def test_openvpn_control_packets_out_of_order_are_put_back_in_order() -> None:
    body = next(b for b in BODIES if b["ipProtocol"] == 17)
    packets = [p for _, p, _, _ in session_packets("openvpn_synthetic", body)]
    reset, server_control = packets[0], packets[3]
    # The server's handshake split into two control messages (ids 1 and 2).
    header_len = 1 + 8 + 1 + 4 + 8 + 4  # opcode, sid, one ack, remote sid, id
    sid, flight = server_control[1:9], server_control[header_len:]
    parts = [flight[:300], flight[300:]]
    split = [b"\x20" + sid + b"\x00" + i.to_bytes(4, "big") + part
             for i, part in ((1, parts[0]), (2, parts[1]))]  # fmt: skip
    state = new_app_state("udp", body["source"]["port"], 4444)
    state.feed(0, reset, None, 0)
    state.feed(1, split[1], None, 0)
    assert "tls.server.ja3s" not in state.fields()
    state.feed(1, split[0], None, 0)
    assert state.fields()["tls.server.ja3s"] == body["tls"]["ja3s"]
    assert state.errors == 0


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=900),
    flips=st.lists(st.integers(min_value=0, max_value=899), max_size=4),
)
def test_openvpn_damaged_packets_are_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    body = next(b for b in BODIES if b["ipProtocol"] == 6)
    state = new_app_state("tcp", body["source"]["port"], 8443)
    seqs = [1000, 5000]
    for direction, payload, _, _ in session_packets("openvpn_synthetic", body):
        data = bytearray(payload[:cut])
        for i in flips:
            if i < len(data):
                data[i] ^= 0x99
        state.feed(direction, bytes(data), seqs[direction], 0x18)
        seqs[direction] += len(data)
    assert state.errors <= 1
