"""DHCP and DHCPv6 against Arkime's expected sessions and dpkt's decoding.

fpc keys sessions by 5-tuple, so a broadcast DHCP request and its unicast
reply are two sessions (Arkime pairs them); each side is compared on its own.
"""

from __future__ import annotations

import ipaddress
import struct

import dpkt
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets
from test_appl_other import run, sessions

from fpc.appl import new_app_state
from fpc.appl.dhcp import MESSAGE_TYPES


def _endpoints(src: tuple[str, int], dst: tuple[str, int]) -> dict:
    return {
        "source": {"ip": src[0], "port": src[1]},
        "destination": {"ip": dst[0], "port": dst[1]},
        "ipProtocol": 17,
    }


def _dpkt_view(payloads: list[bytes]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"type": set(), "xid": set(), "mac": set()}
    for payload in payloads:
        msg = dpkt.dhcp.DHCP(payload)
        opts = dict(msg.opts)
        out["type"].add(MESSAGE_TYPES[opts[dpkt.dhcp.DHCP_OPT_MSGTYPE][0]])
        out["xid"].add(f"{msg.xid:x}")
        out["mac"].add(msg.chaddr[:6].hex(":"))
    return out


def test_dhcp_client_session_matches_arkime_and_dpkt() -> None:
    (body,) = arkime_sessions("wireshark-dhcp", "dhcp")
    got = run_session("wireshark-dhcp", body).fields()
    want = body["dhcp"]
    assert got["fpc.dhcp.transaction_id"] == want["id"]
    assert got["fpc.dhcp.client_mac"] == want["mac"]
    assert got["fpc.dhcp.requested_ip"] == want["requestIp"]
    view = _dpkt_view([p for _, p, _, _ in session_packets("wireshark-dhcp", body)])
    assert set(got["fpc.dhcp.message_type"]) == view["type"] <= set(want["type"])


def test_dhcp_server_replies_match_arkime_types_and_dpkt() -> None:
    (arkime,) = arkime_sessions("wireshark-dhcp", "dhcp")
    body = _endpoints(("192.168.0.1", 67), ("192.168.0.10", 68))
    packets = session_packets("wireshark-dhcp", body)
    got = run_session("wireshark-dhcp", body).fields()
    view = _dpkt_view([p for _, p, _, _ in packets])
    assert set(got["fpc.dhcp.message_type"]) == view["type"] == {"OFFER", "ACK"}
    assert set(got["fpc.dhcp.message_type"]) <= set(arkime["dhcp"]["type"])
    yiaddr = {
        str(ipaddress.IPv4Address(dpkt.dhcp.DHCP(p).yiaddr)) for _, p, _, _ in packets
    }
    assert set(got["fpc.dhcp.assigned_ip"]) == yiaddr == {"192.168.0.10"}


def test_dhcp_other_capture_host_name_and_lease_match_dpkt() -> None:
    found = {}
    for key, packets in sessions("chrissanders-dhcp-nolease-init.pcapng").items():
        got = run(key, packets).fields()
        for payload in (p for _, p, _, _ in packets):
            opts = dict(dpkt.dhcp.DHCP(payload).opts)
            if dpkt.dhcp.DHCP_OPT_HOSTNAME in opts:
                found["host"] = opts[dpkt.dhcp.DHCP_OPT_HOSTNAME].decode()
                assert got["fpc.dhcp.host_name"] == [found["host"]]
    assert found == {"host": "ubuntu2"}


def test_dhcpv6_sessions_match_arkime_client_side() -> None:
    bodies = arkime_sessions("wireshark-dhcpv6", "dhcpv6")
    assert len(bodies) == 3
    for body in bodies:
        got = run_session("wireshark-dhcpv6", body).fields()
        # One 5-tuple holds all three transactions in fpc; Arkime splits them.
        assert set(body["dhcp"]["id"]) <= set(got["fpc.dhcp.transaction_id"])
        client_types = {"SOLICIT", "REQUEST", "RELEASE"}
        assert set(body["dhcp"]["type"]) & client_types <= set(
            got["fpc.dhcp.message_type"]
        )


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400), flips=st.lists(st.integers(0, 399)))
def test_dhcp_damaged_message_is_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    (body,) = arkime_sessions("wireshark-dhcp", "dhcp")
    payload = bytearray(session_packets("wireshark-dhcp", body)[0][1])
    for i in flips:
        if i < len(payload):
            payload[i] ^= 0xA5
    state = new_app_state("udp", 68, 67)
    state.feed(0, bytes(payload[:cut]), None, 0)
    assert state.errors <= 1


def test_dhcp_option_running_past_the_datagram_is_one_error() -> None:
    msg = bytearray(240)
    msg[0], msg[1], msg[2] = 1, 1, 6
    msg[236:240] = bytes((99, 130, 83, 99))
    state = new_app_state("udp", 68, 67)
    state.feed(0, bytes(msg) + struct.pack("!BB", 53, 9) + b"\x01", None, 0)
    assert state.protocols() == ["dhcp"] and state.errors == 1
