"""DHCP and DHCPv6 sessions: keyed by client and transaction, not by 5-tuple."""

from __future__ import annotations

import struct

import dpkt
import numpy as np

from fpc.decode import decode_batch
from fpc.packets import PacketBatch
from fpc.session import SessionLimits, SessionTable
from fpc.spi import build_record

NS = 1_000_000_000
ANY, BCAST = b"\0\0\0\0", b"\xff\xff\xff\xff"
SERVER, CLIENT = bytes([192, 168, 0, 1]), bytes([192, 168, 0, 10])
SERVER_MAC, CLIENT_MAC = b"\x00\x08\x74\xad\xf1\x9b", b"\x00\x0b\x82\x01\xfc\x42"
COOKIE = b"\x63\x82\x53\x63"


def dhcp(op: int, xid: int, chaddr: bytes, msg_type: int) -> bytes:
    """A DHCP message: the 236 fixed bytes, the magic cookie, option 53."""
    fixed = struct.pack("!BBBBIHH", op, 1, 6, 0, xid, 0, 0) + b"\0" * 16
    fixed += chaddr.ljust(16, b"\0") + b"\0" * 192
    return fixed + COOKIE + bytes([53, 1, msg_type, 255])


def v4(src, dst, sport, dport, payload, smac, dmac) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip.IP(src=src, dst=dst, p=17, data=udp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=smac, dst=dmac, data=ip))


def v6(src, dst, sport, dport, payload) -> bytes:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = 8 + len(payload)
    ip = dpkt.ip6.IP6(src=src, dst=dst, nxt=17, hlim=1, data=udp)
    ip.plen = len(bytes(udp))
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x33\x33\0\x01\0\x02",
                                 type=dpkt.ethernet.ETH_TYPE_IP6, data=ip)  # fmt: skip
    return bytes(eth)


def run(frames: list[bytes]) -> list[dict]:
    """Records of `frames`, sent one second apart, oldest first."""
    table = SessionTable(SessionLimits(), app_layer=True)
    batch = PacketBatch.from_list(
        [(i * NS, len(f), f) for i, f in enumerate(frames)], 1
    )
    n = len(batch)
    table.add_batch(
        batch, decode_batch(batch), np.ones(n, dtype=np.int64), np.arange(n)
    )
    table.flush_all()
    return [build_record("t", s) for s in table.take_done()]


def dora(chaddr: bytes = CLIENT_MAC, xids=(0x3D1D, 0x3D1E)) -> list[bytes]:
    """DISCOVER, OFFER, REQUEST, ACK; the REQUEST takes a new xid, as some do."""
    return [
        v4(ANY, BCAST, 68, 67, dhcp(1, xids[0], chaddr, 1), chaddr, b"\xff" * 6),
        v4(SERVER, CLIENT, 67, 68, dhcp(2, xids[0], chaddr, 2), SERVER_MAC, chaddr),
        v4(ANY, BCAST, 68, 67, dhcp(1, xids[1], chaddr, 3), chaddr, b"\xff" * 6),
        v4(SERVER, CLIENT, 67, 68, dhcp(2, xids[1], chaddr, 5), SERVER_MAC, chaddr),
    ]


def test_dhcp_exchange_is_one_session_under_its_first_packets_endpoints():
    records = run(dora())
    assert len(records) == 1
    r = records[0]
    assert (r["source"]["ip"], r["source"]["port"]) == ("0.0.0.0", 68)
    assert (r["destination"]["ip"], r["destination"]["port"]) == ("255.255.255.255", 67)
    assert (r["source"]["packets"], r["destination"]["packets"]) == (2, 2)
    assert r["fpc"]["packet"]["pos"] == [0, 1, 2, 3]
    assert r["fpc"]["dhcp"]["message_type"] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert "00-08-74-AD-F1-9B" in r["destination"]["mac"]


def test_dhcp_clients_are_sessions_of_their_own():
    other = b"\x02\x00\x00\x00\x00\x07"
    frames = dora()
    frames[2:2] = dora(other, xids=(1, 2))
    records = run(frames)
    assert sorted(r["network"]["packets"] for r in records) == [4, 4]
    assert sorted(r["fpc"]["packet"]["pos"][0] for r in records) == [0, 2]


def test_dhcp_renewal_reported_with_sides_in_key_order():
    # The client's address is the higher one: the reported key puts the server
    # first, and the counts must follow their side.
    renew = [
        v4(CLIENT, SERVER, 68, 67, dhcp(1, 9, CLIENT_MAC, 3), CLIENT_MAC, SERVER_MAC),
        v4(SERVER, CLIENT, 67, 68, dhcp(2, 9, CLIENT_MAC, 5), SERVER_MAC, CLIENT_MAC),
        v4(SERVER, CLIENT, 67, 68, dhcp(2, 9, CLIENT_MAC, 5), SERVER_MAC, CLIENT_MAC),
    ]
    (r,) = run(renew)
    assert (r["source"]["ip"], r["source"]["port"]) == ("192.168.0.10", 68)
    assert (r["destination"]["ip"], r["destination"]["port"]) == ("192.168.0.1", 67)
    assert (r["source"]["packets"], r["destination"]["packets"]) == (1, 2)
    assert r["source"]["mac"] == ["00-0B-82-01-FC-42"]
    assert r["destination"]["mac"] == ["00-08-74-AD-F1-9B"]


def test_udp_on_dhcp_ports_without_a_dhcp_message_is_keyed_by_5_tuple():
    frames = [
        v4(ANY, BCAST, 68, 67, b"not dhcp", CLIENT_MAC, b"\xff" * 6),
        v4(SERVER, CLIENT, 67, 68, b"not dhcp", SERVER_MAC, CLIENT_MAC),
    ]
    assert [r["network"]["packets"] for r in run(frames)] == [1, 1]


CLIENT6 = bytes.fromhex("fe800000000000000a0027fffefe8f95")
SERVER6 = bytes.fromhex("fe800000000000000a0027fffed410bb")
GROUP6 = bytes.fromhex("ff020000000000000000000000010002")


def dhcp6(msg_type: int, xid: int) -> bytes:
    return bytes([msg_type]) + xid.to_bytes(3, "big") + b"\0\x08\0\x02\0\0"


def test_dhcpv6_each_transaction_is_a_session():
    frames = [
        v6(CLIENT6, GROUP6, 546, 547, dhcp6(1, 0x100874)),  # SOLICIT
        v6(SERVER6, CLIENT6, 547, 546, dhcp6(2, 0x100874)),  # ADVERTISE
        v6(CLIENT6, GROUP6, 546, 547, dhcp6(3, 0x49174E)),  # REQUEST
        v6(SERVER6, CLIENT6, 547, 546, dhcp6(7, 0x49174E)),  # REPLY
    ]
    records = run(frames)
    assert [r["fpc"]["packet"]["pos"] for r in records] == [[0, 1], [2, 3]]
    for r in records:
        assert r["source"]["ip"] == "fe80::a00:27ff:fefe:8f95"
        assert r["source"]["port"] == 546
        assert (r["destination"]["ip"], r["destination"]["port"]) == ("ff02::1:2", 547)
        assert (r["source"]["packets"], r["destination"]["packets"]) == (1, 1)


def test_dhcpv6_relayed_messages_are_keyed_by_5_tuple():
    frames = [v6(CLIENT6, SERVER6, 547, 547, dhcp6(12, xid)) for xid in (1, 2)]
    assert [r["network"]["packets"] for r in run(frames)] == [2]


def with_hlen(message: bytes, hlen: int, padding: bytes = b"") -> bytes:
    """`message` with hardware address length `hlen` and chaddr bytes past
    it set to `padding`."""
    out = bytearray(message)
    out[2] = hlen
    out[28 + hlen : 28 + hlen + len(padding)] = padding
    return bytes(out)


def test_dhcp_chaddr_padding_past_hlen_is_not_part_of_the_key():
    frames = dora()
    # the server's stack leaves junk in the chaddr bytes past the MAC
    for i in (1, 3):
        eth = dpkt.ethernet.Ethernet(frames[i])
        udp = eth.data.data
        udp.data = with_hlen(udp.data, 6, b"\xaa" * 10)
        udp.sum = 0
        frames[i] = bytes(eth)
    (record,) = run(frames)
    assert record["network"]["packets"] == 4


def test_dhcp_clients_without_a_hardware_address_are_keyed_by_5_tuple():
    # hlen 0 (as over InfiniBand): two clients must not become one session
    first = [with_hlen(dhcp(1, 7, b"", 1), 0)]
    second = [with_hlen(dhcp(1, 8, b"", 1), 0)]
    frames = [
        v4(ANY, BCAST, 68, 67, first[0], CLIENT_MAC, b"\xff" * 6),
        v4(CLIENT, SERVER, 68, 67, second[0], b"\x02" * 6, SERVER_MAC),
    ]
    records = run(frames)
    assert len(records) == 2
    assert {r["source"]["ip"] for r in records} == {"0.0.0.0", "192.168.0.10"}


def test_dhcp_exchange_names_its_unicast_addresses_in_related_ip():
    # DISCOVER .. ACK, then a unicast renewal: the session is reported under
    # 0.0.0.0 -> 255.255.255.255, and is found by the client's and the
    # server's addresses (ciaddr, yiaddr, server identifier).
    def with_addresses(message: bytes, ciaddr=b"", yiaddr=b"", server_id=b""):
        out = bytearray(message)
        out[12:16] = ciaddr or bytes(4)
        out[16:20] = yiaddr or bytes(4)
        options = bytes([54, 4]) + server_id if server_id else b""
        return bytes(out[:-1]) + options + b"\xff"  # before the END option

    frames = dora()
    offer = dpkt.ethernet.Ethernet(frames[1])
    offer.data.data.data = with_addresses(
        offer.data.data.data, yiaddr=CLIENT, server_id=SERVER
    )
    offer.data.data.ulen = 8 + len(offer.data.data.data)
    offer.data.data.sum = 0
    offer.data.len = 20 + offer.data.data.ulen
    offer.data.sum = 0
    frames[1] = bytes(offer)
    renew = dhcp(1, 9, CLIENT_MAC, 3)
    frames.append(
        v4(CLIENT, SERVER, 68, 67, with_addresses(renew, ciaddr=CLIENT), CLIENT_MAC,
           SERVER_MAC)
    )  # fmt: skip
    (r,) = run(frames)
    assert r["source"]["ip"] == "0.0.0.0"
    assert r["related"]["ip"] == [
        "0.0.0.0", "255.255.255.255", "192.168.0.10", "192.168.0.1"
    ]  # fmt: skip
    assert r["network"]["packets"] == 5


def test_dhcpv6_assigned_address_is_in_related_ip():
    from fpc.appl import new_app_state

    iaaddr = struct.pack("!HH", 5, 24) + bytes.fromhex("20010db8" + "0" * 23 + "5")
    iaaddr += struct.pack("!II", 3600, 7200)
    ia_na = struct.pack("!HH", 3, 12 + len(iaaddr)) + struct.pack("!III", 1, 0, 0)
    reply = bytes([7]) + (0x49174E).to_bytes(3, "big") + ia_na + iaaddr
    state = new_app_state("udp", 546, 547)
    state.feed(1, reply, None, 0)
    assert state.fields()["related.ip"] == ["2001:db8::5"]


def test_dhcp_hardware_address_length_is_part_of_the_key():
    short = with_hlen(dhcp(1, 7, b"\xaa\xbb\xcc", 1), 3)
    full = with_hlen(dhcp(1, 8, b"\xaa\xbb\xcc", 1), 6)
    frames = [
        v4(ANY, BCAST, 68, 67, short, CLIENT_MAC, b"\xff" * 6),
        v4(ANY, BCAST, 68, 67, full, CLIENT_MAC, b"\xff" * 6),
    ]
    assert len(run(frames)) == 2
