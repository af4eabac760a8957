"""STUN and TURN against Arkime's sessions (classic RFC 3489 STUN over UDP,
TURN over TCP port 80), and damaged messages."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state
from fpc.appl.stun import message_type


def test_stun_message_types_and_user_match_arkime() -> None:
    for body in arkime_sessions("stun", "stun"):
        want = body.get("stun", {})
        if not want:
            continue  # Arkime read nothing from these sessions either
        got = run_session("stun", body).fields()
        assert got["fpc.stun.message_type"] == want["type"]
        assert got.get("fpc.stun.user", []) == want.get("username", [])


def test_stun_text_variant_on_3478_is_named_stun_without_errors() -> None:
    body = next(b for b in arkime_sessions("stun", "stun")
                if b["source"]["port"] == 53633)  # fmt: skip
    state = run_session("stun", body)
    assert state.protocols() == ["stun"] and state.errors == 0
    assert not state.fields()  # "RSP/2.0 STUN" carries no binary attributes


def test_stun_text_variant_over_tcp_is_named_stun_as_arkime() -> None:
    # "RSP/1.0 CLI_STUN_FIREWALLCHECK" from 10.0.0.6:64379 to TCP 3478.
    (body,) = [b for b in arkime_sessions("stun", "stun")
               if b["ipProtocol"] == 6]  # fmt: skip
    state = run_session("stun", body)
    assert state.protocols() == ["stun"] and state.errors == 0
    assert not state.fields()


def test_stun_text_variant_split_over_tcp_waits_for_its_line() -> None:
    state = new_app_state("tcp", 50000, 3478)
    state.feed(0, b"RSP/1.0 CLI_ST", 1, 0)
    state.feed(0, b"UN_FIREWALLCHECK\r\nGUID:1\r\n\r\n", 15, 0)
    assert state.protocols() == ["stun"] and state.errors == 0


def test_stun_text_variant_off_port_is_not_stun() -> None:
    state = new_app_state("udp", 40000, 40001)
    state.feed(0, b"RSP/2.0 STUN\r\ntoken:1\r\n\r\n", None, 0)
    assert "stun" not in state.protocols()


def test_turn_over_tcp_matches_arkime() -> None:
    (body,) = arkime_sessions("turn", "stun")
    state = run_session("turn", body)
    got, want = state.fields(), body["stun"]
    assert state.errors == 0
    assert set(got["fpc.stun.message_type"]) == set(want["type"])
    assert got["fpc.stun.error_code"] == want["error"]
    assert got["fpc.stun.realm"] == want["realm"]
    assert got["fpc.stun.user"] == want["username"]
    mapped = [f"{ip}:{port}" for ip, port in zip(want["xorMappedIp"],
              want["xorMappedPort"], strict=True)]  # fmt: skip
    assert got["fpc.stun.mapped_address"] == mapped
    relayed = [f"{ip}:{port}" for ip, port in zip(want["xorRelayedIp"],
               want["xorRelayedPort"], strict=True)]  # fmt: skip
    assert got["fpc.stun.relayed_address"] == relayed
    peers = {a.rsplit(":", 1)[0] for a in got["fpc.stun.peer_address"]}
    assert peers == set(want["xorPeerIp"])


def test_stun_message_type_names_follow_rfc8489_bit_layout() -> None:
    assert message_type(0x0001) == "Binding Request"
    assert message_type(0x0101) == "Binding Response"
    assert message_type(0x0113) == "Allocate Error"
    assert message_type(0x0016) == "Send Indication"  # RFC 8656 section 18
    assert message_type(0x0017) == "Data Indication"


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 200), flips=st.lists(st.integers(0, 199), max_size=4))
def test_stun_damaged_message_is_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    (body,) = arkime_sessions("turn", "stun")
    first = next(p for d, p, _, _ in session_packets("turn", body) if d == 1 and p)
    data = bytearray(first[:cut])
    for i in flips:
        if 4 <= i < len(data):  # keep the cookie so the session is STUN
            data[i] ^= 0x5A
    state = new_app_state("udp", 40000, 3478)
    state.feed(0, bytes(data), None, 0)
    assert state.errors <= 1
