"""fpc.decode / fpc._fastpath.decode_batch on packets built by hand.

Every expected value comes from the bytes the test built (addresses, ports,
offsets), never from an earlier run of the decoder.
"""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest

from fpc import decode
from fpc.packets import PacketBatch

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
V4_A, V4_B = "10.0.0.1", "192.168.1.20"
V6_A, V6_B = "2001:db8::1", "2001:db8::2"

ETH_IP4, ETH_IP6 = 0x0800, 0x86DD


# --- packet builders -------------------------------------------------------


def addr16(text: str) -> bytes:
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_pton(family, text).ljust(16, b"\0")


def eth(
    ethertype: int, payload: bytes, dst: bytes = MAC_B, src: bytes = MAC_A
) -> bytes:
    return dst + src + struct.pack(">H", ethertype) + payload


def vlan_tag(next_type: int, vid: int) -> bytes:
    """A tag's TCI (priority 5) and the ethertype that follows it."""
    return struct.pack(">HH", (5 << 13) | vid, next_type)


def ipv4(
    proto: int,
    payload: bytes,
    src: str = V4_A,
    dst: str = V4_B,
    ttl: int = 64,
    ident: int = 0x1234,
    frag: int = 0,
    options: bytes = b"",
    total: int | None = None,
) -> bytes:
    ihl = (20 + len(options)) // 4
    length = 20 + len(options) + len(payload) if total is None else total
    head = struct.pack(
        ">BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        length,
        ident,
        frag,
        ttl,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return head + options + payload


def ipv6(
    nh: int,
    payload: bytes,
    src: str = V6_A,
    dst: str = V6_B,
    hlim: int = 61,
    plen: int | None = None,
) -> bytes:
    length = len(payload) if plen is None else plen
    return (
        struct.pack(">IHBB", 0x60000000, length, nh, hlim)
        + addr16(src)
        + addr16(dst)
        + payload
    )


def tcp(
    sport: int,
    dport: int,
    payload: bytes = b"",
    seq: int = 1000,
    ack: int = 2000,
    flags: int = 0x18,
    options: bytes = b"",
) -> bytes:
    doff = (20 + len(options)) // 4
    head = struct.pack(
        ">HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 512, 0, 0
    )
    return head + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(icmp_type: int, code: int, rest: bytes = b"\0\x01\0\x01") -> bytes:
    return struct.pack(">BBH", icmp_type, code, 0) + rest


def gre(proto: int, payload: bytes, flags: int = 0, extra: bytes = b"") -> bytes:
    return struct.pack(">HH", flags, proto) + extra + payload


TCP_PAYLOAD = b"GET / HTTP/1.1\r\n\r\n"


def inner_tcp4() -> bytes:
    return ipv4(6, tcp(40000, 80, TCP_PAYLOAD), src="172.16.0.5", dst="172.16.0.9")


# --- decoding and independent expectations ----------------------------------


def decode_one(pkt: bytes, linktype: int = 1, key_vlan: bool = False) -> np.void:
    batch = PacketBatch.from_list([(0, len(pkt), pkt)], linktype)
    return decode.decode_batch(batch, key_vlan)[0]


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32, written from its published description."""
    mask = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & mask

    h = seed
    full = len(data) // 4 * 4
    for (k,) in struct.iter_unpack("<I", data[:full]):
        k = rotl((k * 0xCC9E2D51) & mask, 15) * 0x1B873593 & mask
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & mask
    tail = data[full:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl((k * 0xCC9E2D51) & mask, 15) * 0x1B873593 & mask
    h ^= len(data)
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & mask
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & mask
    return h ^ (h >> 16)


def test_murmur3_reference_matches_published_vectors():
    assert murmur3_32(b"") == 0
    assert murmur3_32(b"hello") == 0x248BFA47
    assert murmur3_32(b"The quick brown fox jumps over the lazy dog") == 0x2E4FF723


def expected_key(
    src: str, dst: str, sport: int, dport: int, proto: int, vlans=(0, 0)
) -> tuple[bytes, int]:
    a, b = (addr16(src), sport), (addr16(dst), dport)
    lo, hi = min(a, b), max(a, b)
    version = 6 if ":" in src else 4
    key = struct.pack(
        ">16s16sHHBBHH2x", lo[0], hi[0], lo[1], hi[1], proto, version, *vlans
    )
    return key, int(a > b)


def check_ip(row, src, dst, proto, sport=0, dport=0, vlans=(0, 0)) -> None:
    assert row["status"] == decode.STATUS_IP
    assert row["src"].ljust(16, b"\0") == addr16(src)
    assert row["dst"].ljust(16, b"\0") == addr16(dst)
    assert (row["proto"], row["sport"], row["dport"]) == (proto, sport, dport)
    key_ports = (0, 0) if proto in (1, 58) else (sport, dport)
    key, reverse = expected_key(src, dst, *key_ports, proto, vlans)
    assert row["key"].ljust(44, b"\0") == key
    assert row["reverse"] == reverse
    assert row["hash"] == murmur3_32(key)


def check_inner_tcp4(row, tunnel: int) -> None:
    check_ip(row, "172.16.0.5", "172.16.0.9", 6, 40000, 80)
    assert row["tunnel"] == tunnel
    assert row["payload_len"] == len(TCP_PAYLOAD)


# --- Ethernet, IPv4, TCP ---------------------------------------------------


def test_decode_ethernet_ipv4_tcp_fills_every_field():
    segment = tcp(51000, 443, b"hello", seq=7, ack=9, flags=0x12)
    pkt = eth(ETH_IP4, ipv4(6, segment, ttl=33, ident=0xBEEF))
    row = decode_one(pkt)
    check_ip(row, V4_A, V4_B, 6, 51000, 443)
    assert row["ip_version"] == 4 and row["ttl"] == 33 and row["ip_id"] == 0xBEEF
    assert row["tcp_flags"] == decode.TCP_SYN | decode.TCP_ACK
    assert (row["seq"], row["ack"]) == (7, 9)
    assert row["l3_offset"] == 14 and row["payload_offset"] == 14 + 20 + 20
    assert row["payload_len"] == 5
    assert row["src_mac"] == MAC_A and row["dst_mac"] == MAC_B
    assert row["ethertype"] == ETH_IP4 and row["tunnel"] == 0 and row["frag"] == 0


def test_decode_reverse_direction_same_key_and_hash():
    fwd = decode_one(eth(ETH_IP4, ipv4(6, tcp(51000, 443))))
    rev = decode_one(eth(ETH_IP4, ipv4(6, tcp(443, 51000), src=V4_B, dst=V4_A)))
    assert fwd["key"] == rev["key"] and fwd["hash"] == rev["hash"]
    assert {int(fwd["reverse"]), int(rev["reverse"])} == {0, 1}


def test_decode_same_address_orders_by_port():
    row = decode_one(eth(ETH_IP4, ipv4(17, udp(9000, 53), src=V4_A, dst=V4_A)))
    check_ip(row, V4_A, V4_A, 17, 9000, 53)
    assert row["reverse"] == 1


def test_decode_ipv4_options_and_tcp_options_move_payload():
    options = b"\x01\x01\x01\x00"  # NOP NOP NOP EOL
    tcp_opts = b"\x02\x04\x05\xb4" + b"\x01" * 8
    pkt = eth(ETH_IP4, ipv4(6, tcp(1, 2, b"xyz", options=tcp_opts), options=options))
    row = decode_one(pkt)
    assert row["payload_offset"] == 14 + 24 + 32 and row["payload_len"] == 3


def test_decode_ethernet_padding_is_not_payload():
    pkt = eth(ETH_IP4, ipv4(17, udp(5000, 53, b"ab"))).ljust(60, b"\0")
    row = decode_one(pkt)
    assert row["payload_len"] == 2 and row["payload_offset"] == 14 + 28


def test_decode_zero_ip_length_from_offload_runs_to_capture_end():
    row = decode_one(eth(ETH_IP4, ipv4(6, tcp(1, 2, b"abcdef"), total=0)))
    check_ip(row, V4_A, V4_B, 6, 1, 2)
    assert row["payload_len"] == 6
    row = decode_one(eth(ETH_IP6, ipv6(17, udp(1, 2, b"abc"), plen=0)))
    check_ip(row, V6_A, V6_B, 17, 1, 2)
    assert row["payload_len"] == 3


@pytest.mark.parametrize("cut, ports", [(2, (0, 0)), (10, (1234, 80))])
def test_decode_tcp_cut_by_snaplen_keeps_ip_key(cut, ports):
    pkt = eth(ETH_IP4, ipv4(6, tcp(1234, 80, b"data")))[: 14 + 20 + cut]
    row = decode_one(pkt)
    check_ip(row, V4_A, V4_B, 6, *ports)
    assert row["payload_len"] == 0


@pytest.mark.parametrize(
    "pkt",
    [
        eth(ETH_IP4, ipv4(6, tcp(1, 2), total=12)),  # total < header length
        eth(ETH_IP4, b"\x44" + ipv4(6, tcp(1, 2))[1:]),  # IHL 4
        eth(ETH_IP4, ipv4(6, tcp(1, 2))[:15]),  # header cut
        eth(ETH_IP4, ipv4(6, tcp(1, 2), total=30)),  # TCP header past IP length
        eth(ETH_IP4, b"\x65" + ipv4(6, tcp(1, 2))[1:]),  # version 6 under 0x0800
        eth(ETH_IP6, ipv6(17, udp(1, 2))[:30]),
        eth(ETH_IP4, b""),
        MAC_A[:5],
    ],
)
def test_decode_inconsistent_lengths_are_malformed(pkt):
    assert decode_one(pkt)["status"] == decode.STATUS_MALFORMED


def test_decode_tcp_data_offset_below_five_is_malformed():
    seg = bytearray(tcp(1, 2, b"x"))
    seg[12] = 0x40
    assert decode_one(eth(ETH_IP4, ipv4(6, bytes(seg))))["status"] == 2


# --- fragments -------------------------------------------------------------


def test_decode_ipv4_first_fragment_has_ports_and_more_flag():
    row = decode_one(eth(ETH_IP4, ipv4(17, udp(123, 123, b"a" * 16), frag=0x2000)))
    check_ip(row, V4_A, V4_B, 17, 123, 123)
    assert row["frag"] == decode.FRAG_MORE and row["frag_offset"] == 0


def test_decode_ipv4_non_first_fragment_has_no_ports():
    row = decode_one(eth(ETH_IP4, ipv4(17, b"z" * 24, frag=3, ident=77)))
    check_ip(row, V4_A, V4_B, 17)
    assert row["frag"] == decode.FRAG_NONFIRST and row["frag_offset"] == 24
    assert row["ip_id"] == 77 and row["payload_len"] == 24
    assert row["payload_offset"] == 34


def test_decode_ipv6_non_first_fragment():
    frag = struct.pack(">BBHI", 17, 0, (185 << 3) | 1, 0xCAFE)
    row = decode_one(eth(ETH_IP6, ipv6(44, frag + b"q" * 32)))
    check_ip(row, V6_A, V6_B, 17)
    assert row["frag"] == decode.FRAG_MORE | decode.FRAG_NONFIRST
    assert row["frag_offset"] == 185 * 8 and row["ip_id"] == 0xCAFE
    assert row["payload_offset"] == 14 + 48 and row["payload_len"] == 32


# --- IPv6 ------------------------------------------------------------------


def test_decode_ipv6_extension_chain_reaches_udp():
    hbh = struct.pack(">BB", 43, 0) + b"\x01\x04\0\0\0\0"
    routing = struct.pack(">BBBB", 60, 2, 0, 0) + b"\0" * 4 + addr16(V6_B)
    dstopts = struct.pack(">BB", 44, 0) + b"\x01\x04\0\0\0\0"
    frag = struct.pack(">BBHI", 17, 0, 1, 5)  # offset 0, more fragments
    chain = hbh + routing + dstopts + frag
    row = decode_one(eth(ETH_IP6, ipv6(0, chain + udp(547, 546, b"abcd"))))
    check_ip(row, V6_A, V6_B, 17, 547, 546)
    assert row["ttl"] == 61 and row["ip_version"] == 6
    assert row["frag"] == decode.FRAG_MORE and row["ip_id"] == 5
    assert row["payload_offset"] == 14 + 40 + len(chain) + 8
    assert row["payload_len"] == 4


def test_decode_ipv6_ah_is_skipped_and_esp_stops():
    ah = struct.pack(">BBHII", 6, 4, 0, 1, 2) + b"\0" * 12  # (4 + 2) * 4 bytes
    row = decode_one(eth(ETH_IP6, ipv6(51, ah + tcp(22, 6000))))
    check_ip(row, V6_A, V6_B, 6, 22, 6000)
    row = decode_one(eth(ETH_IP6, ipv6(50, struct.pack(">II", 9, 1) + b"e" * 20)))
    check_ip(row, V6_A, V6_B, 50)


def test_decode_ipv4_ah_is_skipped():
    ah = struct.pack(">BBHII", 50, 4, 0, 1, 2) + b"\0" * 12
    row = decode_one(eth(ETH_IP4, ipv4(51, ah + b"esp-data")))
    check_ip(row, V4_A, V4_B, 50)


def test_decode_icmp_echo_pair_shares_key_without_ports():
    req = decode_one(eth(ETH_IP4, ipv4(1, icmp(8, 0))))
    rep = decode_one(eth(ETH_IP4, ipv4(1, icmp(0, 0), src=V4_B, dst=V4_A)))
    check_ip(req, V4_A, V4_B, 1)
    assert (req["icmp_type"], rep["icmp_type"]) == (8, 0)
    assert req["key"] == rep["key"]


def test_decode_icmpv6_type_and_code():
    row = decode_one(eth(ETH_IP6, ipv6(58, icmp(1, 4))))
    check_ip(row, V6_A, V6_B, 58)
    assert (row["icmp_type"], row["icmp_code"]) == (1, 4)


def test_decode_sctp_ports():
    chunk = struct.pack(">HHII", 2905, 38412, 0xAABBCCDD, 0) + b"\0" * 16
    row = decode_one(eth(ETH_IP4, ipv4(132, chunk)))
    check_ip(row, V4_A, V4_B, 132, 2905, 38412)
    assert row["payload_offset"] == 14 + 20 + 12


# --- VLAN, MPLS, PPPoE, LLC ------------------------------------------------


def test_decode_single_vlan_goes_in_key_when_asked():
    pkt = eth(0x8100, vlan_tag(ETH_IP4, 100) + ipv4(17, udp(1, 2)))
    row = decode_one(pkt, key_vlan=True)
    check_ip(row, V4_A, V4_B, 17, 1, 2, vlans=(100, 0))
    assert row["vlan_count"] == 1 and row["tunnel"] == decode.TUNNEL_VLAN
    assert row["l3_offset"] == 18


def test_decode_vlan_left_out_of_key_by_default():
    tagged = decode_one(eth(0x8100, vlan_tag(ETH_IP4, 100) + ipv4(17, udp(1, 2))))
    plain = decode_one(eth(ETH_IP4, ipv4(17, udp(1, 2))))
    check_ip(tagged, V4_A, V4_B, 17, 1, 2)
    assert tagged["key"] == plain["key"] and tagged["hash"] == plain["hash"]
    assert tagged["vlan_count"] == 1 and tagged["vlan"][0] == 100


def test_decode_three_tags_keep_first_two_ids():
    tags = vlan_tag(0x8100, 10) + vlan_tag(0x8100, 20) + vlan_tag(ETH_IP4, 30)
    row = decode_one(eth(0x88A8, tags + ipv4(6, tcp(1, 2))), key_vlan=True)
    check_ip(row, V4_A, V4_B, 6, 1, 2, vlans=(10, 20))
    assert row["vlan_count"] == 3 and list(row["vlan"]) == [10, 20]


def test_decode_9100_tag():
    row = decode_one(
        eth(0x9100, vlan_tag(ETH_IP6, 7) + ipv6(17, udp(1, 2))), key_vlan=True
    )
    check_ip(row, V6_A, V6_B, 17, 1, 2, vlans=(7, 0))


def mpls(label: int, bottom: bool) -> bytes:
    return struct.pack(">I", (label << 12) | (int(bottom) << 8) | 64)


def test_decode_mpls_stack_to_ipv4():
    pkt = eth(0x8847, mpls(16, False) + mpls(17, True) + ipv4(6, tcp(5, 6)))
    row = decode_one(pkt)
    check_ip(row, V4_A, V4_B, 6, 5, 6)
    assert row["tunnel"] == decode.TUNNEL_MPLS and row["l3_offset"] == 22


def test_decode_mpls_pseudowire_ethernet():
    inner = eth(ETH_IP6, ipv6(17, udp(7, 8)), dst=b"\x06" * 6, src=b"\x08" * 6)
    pkt = eth(0x8847, mpls(99, True) + b"\0\0\0\0" + inner)
    row = decode_one(pkt)
    check_ip(row, V6_A, V6_B, 17, 7, 8)
    assert row["src_mac"] == b"\x08" * 6  # innermost Ethernet header: the host's
    assert row["l3_offset"] == 14 + 4 + 4 + 14


def pppoe(ppp_proto: int, payload: bytes) -> bytes:
    body = struct.pack(">H", ppp_proto) + payload
    return struct.pack(">BBHH", 0x11, 0, 0x0042, len(body)) + body


def test_decode_pppoe_ipv4_and_ipv6():
    row = decode_one(eth(0x8864, pppoe(0x0021, ipv4(6, tcp(80, 3333)))))
    check_ip(row, V4_A, V4_B, 6, 80, 3333)
    assert row["tunnel"] == decode.TUNNEL_PPPOE and row["l3_offset"] == 22
    row = decode_one(eth(0x8864, pppoe(0x0057, ipv6(17, udp(1, 2)))))
    check_ip(row, V6_A, V6_B, 17, 1, 2)


def test_decode_pppoe_lcp_is_a_link_frame():
    row = decode_one(eth(0x8864, pppoe(0xC021, b"\x01\x01\x00\x04")))
    assert row["status"] == decode.STATUS_LINK and row["ethertype"] == 0x8864


def test_decode_llc_snap_ipv4():
    snap = b"\xaa\xaa\x03\0\0\0" + struct.pack(">H", ETH_IP4)
    payload = snap + ipv4(17, udp(1, 2))
    row = decode_one(eth(len(payload), payload))
    check_ip(row, V4_A, V4_B, 17, 1, 2)
    assert row["l3_offset"] == 22


@pytest.mark.parametrize(
    "pkt, ethertype",
    [
        (eth(0x0806, b"\0\x01\x08\x00\x06\x04\0\x01" + b"\0" * 20), 0x0806),
        (eth(0x88CC, b"\x02\x07\x04" + b"\0" * 20), 0x88CC),
        (eth(38, b"\x42\x42\x03" + b"\0" * 35), 0x42),  # STP: LLC DSAP
        (eth(0x8863, b"\x11\x09\0\0\0\0"), 0x8863),
    ],
)
def test_decode_non_ip_frames_keyed_by_macs_and_ethertype(pkt, ethertype):
    row = decode_one(pkt)
    assert row["status"] == decode.STATUS_LINK and row["ethertype"] == ethertype
    assert row["src_mac"] == MAC_A and row["dst_mac"] == MAC_B
    key = row["key"].ljust(44, b"\0")
    assert (key[:6], key[16:22]) == (MAC_A, MAC_B) and key[32:42] == b"\0" * 10
    assert int.from_bytes(key[42:44], "big") == ethertype and row["reverse"] == 0
    back = decode_one(pkt[6:12] + pkt[:6] + pkt[12:])  # the other direction
    assert back["key"] == row["key"] and back["reverse"] == 1


def test_decode_frame_to_multicast_group_keyed_without_its_sender():
    lldp = b"\x02\x07\x04" + b"\0" * 20
    group = bytes.fromhex("0180c200000e")
    one = decode_one(eth(0x88CC, lldp, dst=group, src=MAC_A))
    two = decode_one(eth(0x88CC, lldp, dst=group, src=MAC_B))
    assert one["status"] == two["status"] == decode.STATUS_LINK
    assert one["key"] == two["key"] and one["src_mac"] != two["src_mac"]
    broadcast = b"\xff" * 6
    arp = b"\0\x01\x08\x00\x06\x04\0\x01" + b"\0" * 20
    one = decode_one(eth(0x0806, arp, dst=broadcast, src=MAC_A))
    two = decode_one(eth(0x0806, arp, dst=broadcast, src=MAC_B))
    assert one["key"] != two["key"]  # broadcast is not a group: one per sender


# --- other link types -------------------------------------------------------


def test_decode_linux_sll_and_sll2():
    sll = struct.pack(">HHH8sH", 0, 1, 6, MAC_A.ljust(8, b"\0"), ETH_IP4)
    row = decode_one(sll + ipv4(6, tcp(1, 2)), linktype=113)
    check_ip(row, V4_A, V4_B, 6, 1, 2)
    assert row["l3_offset"] == 16
    sll2 = struct.pack(">HHIHBB8s", ETH_IP6, 0, 3, 1, 0, 6, MAC_A.ljust(8, b"\0"))
    row = decode_one(sll2 + ipv6(17, udp(1, 2)), linktype=276)
    check_ip(row, V6_A, V6_B, 17, 1, 2)
    assert row["l3_offset"] == 20


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_decode_raw_ip_by_version_nibble(linktype):
    row = decode_one(ipv4(6, tcp(1, 2)), linktype)
    check_ip(row, V4_A, V4_B, 6, 1, 2)
    row = decode_one(ipv6(17, udp(3, 4)), linktype)
    check_ip(row, V6_A, V6_B, 17, 3, 4)


def test_decode_raw_ipv4_and_ipv6_link_types():
    check_ip(decode_one(ipv4(17, udp(1, 2)), 228), V4_A, V4_B, 17, 1, 2)
    check_ip(decode_one(ipv6(17, udp(1, 2)), 229), V6_A, V6_B, 17, 1, 2)
    assert decode_one(ipv6(17, udp(1, 2)), 228)["status"] == decode.STATUS_MALFORMED


@pytest.mark.parametrize(
    "header, linktype, version",
    [
        (struct.pack("<I", 2), 0, 4),
        (struct.pack(">I", 2), 0, 4),  # written by a big-endian host
        (struct.pack("<I", 24), 0, 6),
        (struct.pack("<I", 28), 0, 6),
        (struct.pack("<I", 30), 0, 6),
        (struct.pack(">I", 2), 108, 4),
        (struct.pack(">I", 30), 108, 6),
    ],
)
def test_decode_null_and_loop(header, linktype, version):
    if version == 4:
        check_ip(decode_one(header + ipv4(6, tcp(1, 2)), linktype), V4_A, V4_B, 6, 1, 2)
    else:
        check_ip(decode_one(header + ipv6(6, tcp(1, 2)), linktype), V6_A, V6_B, 6, 1, 2)


@pytest.mark.parametrize(
    "header, body, l3",
    [
        (b"\x18\x41\x03\xcc", ipv4(1, icmp(8, 0)), 4),
        (b"\x18\x41\x03\x00\xcc", ipv4(1, icmp(8, 0)), 5),
        (b"\x18\x41\x03\x8e", ipv6(1, icmp(8, 0), src=V4_A, dst=V4_B), 4),
        (b"\x18\x41\x03\x80\0\0\0\x08\x00", ipv4(1, icmp(8, 0)), 9),
        (b"\x18\x61\x08\x00", ipv4(1, icmp(8, 0)), 4),  # Cisco encapsulation
    ],
)
def test_decode_frame_relay(header, body, l3):
    if body[0] >> 4 == 6:
        body = ipv6(58, icmp(128, 0))
    row = decode_one(header + body, linktype=107)
    assert row["status"] == decode.STATUS_IP and row["l3_offset"] == l3
    assert row["icmp_type"] in (8, 128)


def nflog_tlv(tlv_type: int, value: bytes) -> bytes:
    tlv = struct.pack("<HH", 4 + len(value), tlv_type) + value
    return tlv + b"\0" * (-len(tlv) % 4)


def test_decode_nflog_payload_tlv():
    packet = ipv4(17, udp(68, 67, b"dhcp"))
    head = (
        b"\x02\x00\x00\x28" + nflog_tlv(1, b"\x08\x00\x01\x00") + nflog_tlv(10, b"ab")
    )
    row = decode_one(head + nflog_tlv(9, packet), linktype=239)
    check_ip(row, V4_A, V4_B, 17, 68, 67)
    assert row["l3_offset"] == len(head) + 4 and row["payload_len"] == 4


def wlan_data(payload: bytes, qos: bool, fc1: int = 0x01) -> bytes:
    fc0 = 0x88 if qos else 0x08
    head = struct.pack("<BBH", fc0, fc1, 0) + MAC_A + MAC_B + MAC_A + b"\0\0"
    if qos:
        head += b"\0\0"
    return head + b"\xaa\xaa\x03\0\0\0" + struct.pack(">H", ETH_IP4) + payload


def test_decode_radiotap_qos_data():
    radiotap = struct.pack("<BBHI", 0, 0, 12, 0x2) + b"\x10\0\0\0"
    frame = wlan_data(ipv4(6, tcp(1, 2)), qos=True)
    row = decode_one(radiotap + frame, linktype=127)
    check_ip(row, V4_A, V4_B, 6, 1, 2)
    assert row["l3_offset"] == 12 + 26 + 8


def test_decode_plain_80211_data_and_beacon():
    row = decode_one(wlan_data(ipv4(17, udp(1, 2)), qos=False), linktype=105)
    check_ip(row, V4_A, V4_B, 17, 1, 2)
    beacon = struct.pack("<BBH", 0x80, 0, 0) + MAC_A * 3 + b"\0" * 20
    assert decode_one(beacon, linktype=105)["status"] == decode.STATUS_NON_IP
    protected = wlan_data(b"\0" * 40, qos=False, fc1=0x41)
    assert decode_one(protected, linktype=105)["status"] == decode.STATUS_NON_IP


@pytest.mark.parametrize("linktype", [9, 147, 50, 65535])
def test_decode_unknown_link_type(linktype):
    row = decode_one(ipv4(6, tcp(1, 2)), linktype)
    assert row["status"] == decode.STATUS_UNSUPPORTED_LINK


# --- tunnels ---------------------------------------------------------------


def outer4(proto: int, payload: bytes) -> bytes:
    return eth(ETH_IP4, ipv4(proto, payload, src="198.51.100.1", dst="198.51.100.2"))


def test_decode_gre_with_key_and_sequence():
    extra = struct.pack(">II", 0x1234, 99)
    row = decode_one(outer4(47, gre(ETH_IP4, inner_tcp4(), 0x3000, extra)))
    check_inner_tcp4(row, decode.TUNNEL_GRE)
    assert row["l3_offset"] == 14 + 20 + 4 + 8
    assert row["src_mac"] == MAC_A


def test_decode_gre_checksum_ipv6_inner():
    inner = ipv6(17, udp(53, 5353, b"dns"))
    row = decode_one(outer4(47, gre(ETH_IP6, inner, 0x8000, b"\0" * 4)))
    check_ip(row, V6_A, V6_B, 17, 53, 5353)
    assert row["tunnel"] == decode.TUNNEL_GRE


def test_decode_gre_transparent_ethernet():
    inner = eth(ETH_IP4, inner_tcp4(), src=b"\x0a" * 6, dst=b"\x0b" * 6)
    row = decode_one(outer4(47, gre(0x6558, inner)))
    check_inner_tcp4(row, decode.TUNNEL_GRE)
    assert (row["src_mac"], row["dst_mac"]) == (b"\x0a" * 6, b"\x0b" * 6)


@pytest.mark.parametrize(
    "ppp", [b"\xff\x03\x00\x21", b"\x00\x21", b"\x21", b"\xff\x03\x21"]
)
def test_decode_pptp_gre_ppp(ppp):
    flags = 0x3001 | 0x0080  # K, S, version 1, A
    extra = struct.pack(">HHII", len(ppp) + 40, 7, 1, 2)
    row = decode_one(outer4(47, gre(0x880B, ppp + inner_tcp4(), flags, extra)))
    check_inner_tcp4(row, decode.TUNNEL_GRE | decode.TUNNEL_PPP)


def test_decode_pptp_lcp_stays_on_outer_gre():
    flags = 0x2001
    row = decode_one(outer4(47, gre(0x880B, b"\xff\x03\xc0\x21\x01", flags, b"\0" * 4)))
    check_ip(row, "198.51.100.1", "198.51.100.2", 47)
    assert row["tunnel"] == 0


def test_decode_erspan_type2_and_type1():
    inner = eth(0x8100, vlan_tag(ETH_IP4, 12) + inner_tcp4())
    erspan2 = struct.pack(">II", 0x1000_0000 | 12, 5)
    pkt = outer4(47, gre(0x88BE, erspan2 + inner, 0x1000, b"\0\0\0\1"))
    row = decode_one(pkt, key_vlan=True)
    check_ip(row, "172.16.0.5", "172.16.0.9", 6, 40000, 80, vlans=(12, 0))
    assert (
        row["tunnel"] == decode.TUNNEL_GRE | decode.TUNNEL_ERSPAN | decode.TUNNEL_VLAN
    )
    row = decode_one(outer4(47, gre(0x88BE, eth(ETH_IP4, inner_tcp4()))))
    check_inner_tcp4(row, decode.TUNNEL_GRE | decode.TUNNEL_ERSPAN)


MAC_C, MAC_D = bytes.fromhex("0a0000000003"), bytes.fromhex("0a0000000004")


def test_decode_erspan_type2_header_vlan_and_inner_macs():
    inner = eth(ETH_IP4, inner_tcp4(), dst=MAC_D, src=MAC_C)
    erspan2 = struct.pack(">II", 0x1000_0000 | (23 << 16) | (1 << 11) | 7, 5)
    row = decode_one(outer4(47, gre(0x88BE, erspan2 + inner, 0x1000, b"\0\0\0\1")))
    check_inner_tcp4(row, decode.TUNNEL_GRE | decode.TUNNEL_ERSPAN)
    assert row["vlan_count"] == 1 and row["vlan"][0] == 23
    assert (row["src_mac"], row["dst_mac"]) == (MAC_C, MAC_D)


def test_decode_erspan_type2_tag_kept_in_frame_counts_once():
    inner = eth(0x8100, vlan_tag(ETH_IP4, 23) + inner_tcp4())
    erspan2 = struct.pack(">II", 0x1000_0000 | (23 << 16) | (3 << 11) | 7, 5)
    row = decode_one(outer4(47, gre(0x88BE, erspan2 + inner, 0x1000, b"\0\0\0\1")))
    assert row["vlan_count"] == 1 and row["vlan"][0] == 23


def test_decode_erspan_of_non_ip_frame_keeps_its_macs_on_the_outer_session():
    cdp = eth(0x0800 - 0x700, b"\xaa\xaa\x03" + b"\0" * 40, dst=MAC_D, src=MAC_C)
    erspan2 = struct.pack(">II", 0x1000_0000 | (23 << 16) | (1 << 11) | 7, 5)
    row = decode_one(outer4(47, gre(0x88BE, erspan2 + cdp, 0x1000, b"\0\0\0\1")))
    check_ip(row, "198.51.100.1", "198.51.100.2", 47)
    assert (row["src_mac"], row["dst_mac"]) == (MAC_C, MAC_D)
    assert row["vlan_count"] == 1 and row["vlan"][0] == 23


@pytest.mark.parametrize("subheader", [False, True])
def test_decode_erspan_type3(subheader):
    head = struct.pack(">III", 0x2000_0000, 123456, 1 if subheader else 0)
    head += b"\0" * 8 if subheader else b""
    inner = eth(ETH_IP4, inner_tcp4())
    row = decode_one(outer4(47, gre(0x22EB, head + inner, 0x1000, b"\0\0\0\2")))
    check_inner_tcp4(row, decode.TUNNEL_GRE | decode.TUNNEL_ERSPAN)


def test_decode_vxlan():
    vx = struct.pack(">II", 0x08000000, 4242 << 8)
    row = decode_one(outer4(17, udp(55555, 4789, vx + eth(ETH_IP4, inner_tcp4()))))
    check_inner_tcp4(row, decode.TUNNEL_VXLAN)


@pytest.mark.parametrize("next_proto", [1, 3])
def test_decode_vxlan_gpe(next_proto):
    inner = inner_tcp4() if next_proto == 1 else eth(ETH_IP4, inner_tcp4())
    head = struct.pack(">BHBI", 0x0C, 0, next_proto, 3 << 8)
    row = decode_one(outer4(17, udp(4789, 4790, head + inner)))
    check_inner_tcp4(row, decode.TUNNEL_VXLAN)


def test_decode_vxlan_garbage_inner_falls_back_to_outer_udp():
    vx = struct.pack(">II", 0x08000000, 1 << 8)
    inner = eth(ETH_IP4, b"\x45\x00\x00\x05" + b"\0" * 16)
    row = decode_one(outer4(17, udp(55555, 4789, vx + inner)))
    check_ip(row, "198.51.100.1", "198.51.100.2", 17, 55555, 4789)
    assert row["tunnel"] == 0 and row["l3_offset"] == 14
    assert row["payload_len"] == 8 + len(inner)


def test_decode_geneve_with_options():
    opts = b"\x01\x02\x03\x01" + b"\0" * 4  # one 8-byte option
    head = struct.pack(">BBHI", len(opts) // 4, 0, 0x6558, 77 << 8)
    row = decode_one(
        outer4(17, udp(1000, 6081, head + opts + eth(ETH_IP4, inner_tcp4())))
    )
    check_inner_tcp4(row, decode.TUNNEL_GENEVE)


def test_decode_gtpu_with_sequence_and_extension():
    inner = inner_tcp4()
    ext = b"\x01\x10\x05\x00"  # length 1 (4 bytes), content, next type 0
    opt = struct.pack(">HBB", 1, 0, 0x85)
    head = struct.pack(">BBHI", 0x36, 0xFF, len(opt) + len(ext) + len(inner), 0xABCD)
    row = decode_one(outer4(17, udp(2152, 2152, head + opt + ext + inner)))
    check_inner_tcp4(row, decode.TUNNEL_GTP)
    assert row["l3_offset"] == 14 + 20 + 8 + 8 + 4 + 4


def test_decode_gtpu_echo_stays_on_outer():
    head = struct.pack(">BBHI", 0x32, 0x01, 4, 0) + b"\0\1\0\0"
    row = decode_one(outer4(17, udp(2152, 2152, head)))
    check_ip(row, "198.51.100.1", "198.51.100.2", 17, 2152, 2152)


def test_decode_ip_in_ip_and_6in4_and_6in6():
    check_inner_tcp4(decode_one(outer4(4, inner_tcp4())), decode.TUNNEL_IPIP)
    row = decode_one(outer4(41, ipv6(17, udp(1, 2))))
    check_ip(row, V6_A, V6_B, 17, 1, 2)
    assert row["tunnel"] == decode.TUNNEL_IPIP
    outer6 = ipv6(41, ipv6(6, tcp(3, 4), src="fd00::3", dst="fd00::4"))
    row = decode_one(eth(ETH_IP6, outer6))
    check_ip(row, "fd00::3", "fd00::4", 6, 3, 4)
    assert row["l3_offset"] == 14 + 40


def test_decode_nested_ip_in_ip_stops_at_depth_limit():
    pkt = ipv4(6, tcp(1, 2))
    for _ in range(40):
        pkt = ipv4(4, pkt)
    row = decode_one(eth(ETH_IP4, pkt))
    assert row["status"] == decode.STATUS_IP and row["proto"] == 4
    assert row["l3_offset"] == 14 + 20 * 8


def test_decode_gre_inside_gre_reaches_innermost():
    inner = gre(ETH_IP4, inner_tcp4())
    middle = ipv4(47, inner, src="10.9.9.1", dst="10.9.9.2")
    row = decode_one(outer4(47, gre(ETH_IP4, middle)))
    check_inner_tcp4(row, decode.TUNNEL_GRE)


def test_decode_batch_of_mixed_link_types():
    packets = [
        (eth(ETH_IP4, ipv4(6, tcp(1, 2))), 1),
        (ipv6(17, udp(3, 4)), 229),
        (b"\x00", 276),
    ]
    data = b"".join(p for p, _ in packets)
    caplen = np.array([len(p) for p, _ in packets], dtype=np.uint32)
    offset = np.concatenate([[0], np.cumsum(caplen[:-1])]).astype(np.int64)
    batch = PacketBatch(
        data=data,
        offset=offset,
        caplen=caplen,
        wirelen=caplen.copy(),
        ts_ns=np.zeros(3, dtype=np.int64),
        linktype=np.array([lt for _, lt in packets], dtype=np.uint16),
        precision=np.full(3, 6, dtype=np.uint8),
    )
    out = decode.decode_batch(batch)
    assert list(out["status"]) == [0, 0, 2]
    assert list(out["sport"]) == [1, 3, 0]


def test_decode_esp_payload_starts_after_spi_and_sequence():
    encrypted = bytes(range(40))
    esp = struct.pack(">II", 0x1001, 7) + encrypted
    row = decode_one(eth(0x0800, ipv4(50, esp)))
    check_ip(row, V4_A, V4_B, 50)
    assert row["payload_len"] == len(encrypted)
    assert row["payload_offset"] == 14 + 20 + 8
