"""QUIC: Initial keys, client hellos of IETF and Google QUIC, damaged datagrams.

Key derivation is checked against the test vectors of RFC 9001 appendix A.1
and RFC 9369 appendix A.1; the corpus sessions against Arkime's `.test` facts
(Google QUIC version, SNI, user agent; JA3/JA4 of an IETF QUIC ClientHello)
and, for the captures without Arkime output, against the server names their
sources document (curl to www.google.de; a handshake with localhost).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets
from test_appl_other import run, sessions

from fpc.appl import new_app_state
from fpc.appl.quic_initial import VERSION_1, VERSION_2, client_keys

RFC_DCID = bytes.fromhex("8394c8f03e515708")


def test_quic_v1_client_initial_keys_match_rfc9001_a1() -> None:
    key, iv, hp = client_keys(VERSION_1, RFC_DCID)
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


def test_quic_v2_client_initial_keys_match_rfc9369_a1() -> None:
    key, iv, hp = client_keys(VERSION_2, RFC_DCID)
    assert key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert iv.hex() == "91f73e2351d8fa91660e909f"
    assert hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"


@pytest.mark.parametrize("name", ["quic33-wireshark", "quic34", "quic43"])
def test_gquic_version_sni_and_user_agent_match_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "quic")
    state = run_session(name, body)
    got = state.fields()
    assert state.protocols() == ["quic"]
    assert got["fpc.quic.version"] == body["quic"]["version"]
    assert got["tls.client.server_name"] == body["quic"]["host"]
    assert got.get("fpc.quic.user_agent", []) == body["quic"].get("useragent", [])


def test_quic_v1_out_of_order_crypto_frames_give_arkimes_ja3_and_ja4() -> None:
    (body,) = arkime_sessions("quicietfooo", "quic")
    state = run_session("quicietfooo", body)
    got = state.fields()
    assert state.errors == 0
    assert got["fpc.quic.version"] == ["1"]
    assert got["tls.client.ja3"] == body["tls"]["ja3"]
    assert got["tls.client.ja4"] == body["tls"]["ja4"]


@pytest.mark.parametrize(
    ("name", "server_name"),
    [
        ("zeek-quic-v1-curl-http3.pcap", "www.google.de"),
        ("tcpdump-quic-handshake-null-ipv6.pcap", "localhost"),
    ],
)
def test_quic_v1_capture_sni_and_alpn(name: str, server_name: str) -> None:
    ((key, packets),) = sessions(name).items()
    state = run(key, packets)
    got = state.fields()
    assert state.protocols() == ["quic"]
    assert got["tls.client.server_name"] == [server_name]
    assert got["fpc.tls.alpn_offered"][0] == "h3"
    assert got["tls.client.ja4"][0].startswith("q13d")


def _first_datagram(name: str) -> bytes:
    (body,) = arkime_sessions(name, "quic")
    return session_packets(name, body)[0][1]


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["quicietfooo", "quic43"]),
    cut=st.integers(min_value=0, max_value=1400),
    flips=st.lists(st.integers(min_value=0, max_value=1399), max_size=4),
)
def test_quic_damaged_datagram_is_counted_never_raised(
    name: str, cut: int, flips: list[int]
) -> None:
    data = bytearray(_first_datagram(name)[:cut])
    for i in flips:
        if i < len(data):
            data[i] ^= 0x5A
    state = new_app_state("udp", 50000, 443)
    state.feed(0, bytes(data), None, 0)
    state.feed(0, bytes(data), None, 0)
    assert state.errors <= 1
    assert set(state.protocols()) <= {"quic"}


def test_fbzero_over_tcp_sni_matches_arkime() -> None:
    (body,) = arkime_sessions("fbzero-android", "quic")
    state = run_session("fbzero-android", body)
    assert state.protocols() == ["quic"]
    assert state.fields()["tls.client.server_name"] == body["quic"]["host"]
    assert state.errors == 0
