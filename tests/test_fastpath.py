"""fpc._fastpath through Python: real captures checked against dpkt, fuzzing,
pack_records read back with dpkt, and the argument checks of the C code."""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import struct
import sys

import dpkt
import numpy as np
import pytest
import test_decode as td
from hypothesis import given, settings
from hypothesis import strategies as st

from fpc import _fastpath, decode
from fpc.packets import PacketBatch

# Same default and override as tests/conftest.py.
CORPUS = os.environ.get(
    "FPC_CORPUS",
    os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "corpus"),
)
CORPUS_FILES = sorted(
    glob.glob(os.path.join(CORPUS, "*", "*.pcap"))
    + glob.glob(os.path.join(CORPUS, "*", "*.pcapng"))
)
KEY_TRANSACTION = 1  # last key byte of a DHCP transaction key (csrc/decode.h)
LINKTYPES = [0, 1, 12, 14, 101, 105, 107, 108, 113, 127, 228, 229, 239, 276, 147]

needs_corpus = pytest.mark.skipif(not CORPUS_FILES, reason=f"no captures in {CORPUS}")


def read_capture(path: str) -> tuple[int, list[tuple[int, int, bytes]]]:
    """(link type, packets) of a capture as dpkt reads it; stops at damage."""
    packets: list[tuple[int, int, bytes]] = []
    with open(path, "rb") as f:
        try:
            reader = dpkt.pcap.UniversalReader(f)
        except (ValueError, dpkt.Error):
            return -1, packets
        try:
            for ts, buf in reader:
                packets.append((int(ts * 1_000_000_000), len(buf), bytes(buf)))
        except (ValueError, dpkt.Error, struct.error):
            pass
    return reader.datalink(), packets


def decode_list(packets: list[tuple[int, int, bytes]], linktype: int) -> np.ndarray:
    return decode.decode_batch(PacketBatch.from_list(packets, linktype))


def dpkt_ip(buf: bytes, linktype: int):
    """The first IP layer dpkt finds above the link layer, or None."""
    try:
        if linktype == 1:
            layer = dpkt.ethernet.Ethernet(buf).data
        elif linktype == 113:
            layer = dpkt.sll.SLL(buf).data
        elif linktype in (101, 228, 229):
            layer = dpkt.ip.IP(buf) if buf[0] >> 4 == 4 else dpkt.ip6.IP6(buf)
        elif linktype == 0:
            layer = dpkt.loopback.Loopback(buf).data
        else:
            return None
    except (dpkt.Error, struct.error, IndexError, ValueError):
        return None
    return layer if isinstance(layer, dpkt.ip.IP | dpkt.ip6.IP6) else None


DEEP_TUNNELS = (
    decode.TUNNEL_GRE
    | decode.TUNNEL_VXLAN
    | decode.TUNNEL_GENEVE
    | decode.TUNNEL_GTP
    | decode.TUNNEL_IPIP
    | decode.TUNNEL_ERSPAN
)


def compare_with_dpkt(row, buf: bytes, linktype: int) -> bool:
    """Asserts addresses, protocol and ports equal dpkt's; False if not comparable."""
    ip = dpkt_ip(buf, linktype)
    if ip is None or row["status"] != decode.STATUS_IP or row["tunnel"] & DEEP_TUNNELS:
        return False
    if not hasattr(ip, "p"):  # dpkt leaves no payload protocol after an ESP header
        return False
    width = 4 if isinstance(ip, dpkt.ip.IP) else 16
    assert row["src"].ljust(16, b"\0")[:width] == ip.src
    assert row["dst"].ljust(16, b"\0")[:width] == ip.dst
    l4 = ip.data
    if isinstance(l4, dpkt.ah.AH):  # fpc skips IPv4 AH as it does IPv6 AH
        assert row["proto"] == l4.nxt
        return True
    assert row["proto"] == ip.p
    if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP | dpkt.sctp.SCTP):
        if not row["frag"] & decode.FRAG_NONFIRST:
            assert (row["sport"], row["dport"]) == (l4.sport, l4.dport)
    if isinstance(l4, dpkt.tcp.TCP) and len(buf) >= row["payload_offset"]:
        assert row["payload_len"] == len(l4.data)
        assert (row["seq"], row["ack"], row["tcp_flags"]) == (l4.seq, l4.ack, l4.flags)
    return True


@needs_corpus
def test_corpus_decodes_without_crash_and_matches_dpkt():
    compared = 0
    for path in CORPUS_FILES:
        linktype, packets = read_capture(path)
        if not packets:
            continue
        out = decode_list(packets, linktype)
        assert set(out["status"].tolist()) <= {0, 1, 2, 3, 4}, path
        for row, (_, _, buf) in zip(out, packets, strict=True):
            compared += compare_with_dpkt(row, buf, linktype)
    assert compared > 5000


@needs_corpus
@pytest.mark.parametrize(
    "name, tunnel",
    [
        ("arkime/vxlan.pcap", decode.TUNNEL_VXLAN),
        ("arkime/gre-erspan-vxlan.pcap", decode.TUNNEL_VXLAN),
        ("arkime/gtp-u.pcap", decode.TUNNEL_GTP),
        ("arkime/ipv6-in-ipv4.pcap", decode.TUNNEL_IPIP),
        ("other/zeek-geneve.pcap", decode.TUNNEL_GENEVE),
        ("other/zeek-erspan-type1.pcap", decode.TUNNEL_ERSPAN),
        ("other/zeek-gre-erspan3-dot1q.pcap", decode.TUNNEL_ERSPAN),
        ("other/zeek-vxlan-encapsulated-http.pcap", decode.TUNNEL_VXLAN),
        ("other/zeek-gre-within-gre.pcap", decode.TUNNEL_GRE),
    ],
)
def test_corpus_tunnel_captures_are_sessioned_inside(name, tunnel):
    linktype, packets = read_capture(os.path.join(CORPUS, name))
    out = decode_list(packets, linktype)
    inner = out[(out["tunnel"] & tunnel) != 0]
    assert len(inner) > 0
    for row in inner:
        # The inner header sits after the outer one: it was not taken from the outside.
        assert row["l3_offset"] >= 14 + 20


@needs_corpus
def test_corpus_link_types_give_ip_sessions():
    for name in [
        "arkime/icmp-frame-relay.pcap",
        "arkime/nflog.pcap",
        "arkime/80211http.pcap",
        "arkime/http2-nghttp2.pcap",
        "other/zeek-linux-sll2.pcap",
        "other/zeek-sll-irc-starttls.pcap",
        "other/zeek-rawip-rotation.pcap",
        "other/suricata-linktype-228-rawipv4.pcap",
        "other/tcpdump-linktype-raw-ipv6.pcap",
        "other/tcpdump-quic-handshake-null-ipv6.pcap",
        "arkime/pppoe.pcap",
        "arkime/mpls-basic.pcap",
    ]:
        linktype, packets = read_capture(os.path.join(CORPUS, name))
        out = decode_list(packets, linktype)
        assert (out["status"] == decode.STATUS_IP).any(), name


@needs_corpus
def test_corpus_vlan_collisions_give_three_keys():
    linktype, packets = read_capture(
        os.path.join(CORPUS, "other/zeek-vlan-collisions.pcap")
    )
    out = decode_list(packets, linktype)
    by_tuple: dict[bytes, set[int]] = {}
    for row in out[out["status"] == 0]:
        tuple_part = row["key"].ljust(44, b"\0")[:38]
        by_tuple.setdefault(tuple_part, set()).add(int(row["vlan_count"]))
    assert any(counts == {0, 1, 2} for counts in by_tuple.values())


def endpoints_of_keys(out: np.ndarray) -> set[frozenset]:
    """{(address, port), (address, port)} of every session key in `out`; a
    DHCP transaction key holds no addresses, its packet's endpoints stand in
    (the session table reports the session under its first packet's)."""
    pairs = set()
    for row in out[out["status"] == decode.STATUS_IP]:
        key = row["key"].ljust(44, b"\0")
        width = 4 if row["ip_version"] == 4 else 16
        if key[43] == KEY_TRANSACTION:
            src = ipaddress.ip_address(row["src"].ljust(16, b"\0")[:width])
            dst = ipaddress.ip_address(row["dst"].ljust(16, b"\0")[:width])
            pairs.add(frozenset([(src, int(row["sport"])), (dst, int(row["dport"]))]))
            continue
        lo = (ipaddress.ip_address(key[:width]), int.from_bytes(key[32:34], "big"))
        hi = (ipaddress.ip_address(key[16 : 16 + width]), int.from_bytes(key[34:36]))
        pairs.add(frozenset([lo, hi]))
    return pairs


def arkime_endpoints(test_path: str) -> list[frozenset]:
    """Endpoints of the sessions Arkime expects; ARP inside a tunnel is left out
    (Arkime keys it on the outer addresses, fpc sessions it as the outer UDP)."""
    with open(test_path) as f:
        sessions = json.load(f).get("sessions3", [])
    found = []
    for session in sessions:
        body = session["body"]
        src, dst = body["source"], body["destination"]
        if "ip" not in src or "arp" in body.get("protocol", []):
            continue
        found.append(
            frozenset(
                [
                    (ipaddress.ip_address(src["ip"]), src.get("port", 0)),
                    (ipaddress.ip_address(dst["ip"]), dst.get("port", 0)),
                ]
            )
        )
    return found


@needs_corpus
def test_corpus_arkime_sessions_appear_as_keys():
    checked = 0
    for test_path in sorted(glob.glob(os.path.join(CORPUS, "arkime", "*.test"))):
        linktype, packets = read_capture(test_path[: -len(".test")] + ".pcap")
        if not packets:
            continue
        ours = endpoints_of_keys(decode_list(packets, linktype))
        for endpoints in arkime_endpoints(test_path):
            assert endpoints in ours, (test_path, sorted(endpoints))
            checked += 1
    assert checked > 300


def corpus_sample(per_file: int = 6) -> list[tuple[int, bytes]]:
    sample: list[tuple[int, bytes]] = []
    for path in CORPUS_FILES:
        linktype, packets = read_capture(path)
        sample.extend((linktype, buf) for _, _, buf in packets[:per_file])
    return sample


def check_invariants(out: np.ndarray, caplen: np.ndarray) -> None:
    assert set(out["status"].tolist()) <= {0, 1, 2, 3, 4}
    ip = out["status"] == decode.STATUS_IP
    ends = out["payload_offset"][ip].astype(np.int64) + out["payload_len"][ip]
    assert (ends <= caplen[ip]).all()
    assert (out["l3_offset"][ip] < caplen[ip]).all()


def decode_raw(pairs: list[tuple[int, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    data = b"".join(buf for _, buf in pairs)
    caplen = np.array([len(buf) for _, buf in pairs], dtype=np.uint32)
    offset = np.zeros(len(pairs), dtype=np.int64)
    offset[1:] = np.cumsum(caplen[:-1], dtype=np.int64)
    linktype = np.array([lt for lt, _ in pairs], dtype=np.uint16)
    out = np.zeros(len(pairs), dtype=decode.DECODED)
    _fastpath.decode_batch(data, offset, caplen, linktype, out)
    return out, caplen


@needs_corpus
def test_every_prefix_of_corpus_packets_decodes():
    pairs = [
        (lt, buf[:cut]) for lt, buf in corpus_sample() for cut in range(len(buf) + 1)
    ]
    out, caplen = decode_raw(pairs)
    check_invariants(out, caplen)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LINKTYPES), st.binary(max_size=200))))
def test_random_bytes_always_get_a_status(pairs):
    out, caplen = decode_raw(pairs)
    check_invariants(out, caplen)


def tunnel_seeds() -> list[tuple[int, bytes, int]]:
    """(link type, packet, tunnel bits) of well-formed deep packets to mutate."""
    inner = td.inner_tcp4()
    vx = struct.pack(">II", 0x08000000, 1 << 8)
    gtp = struct.pack(">BBHI", 0x34, 0xFF, 4 + len(inner), 1) + b"\0\1\0\0"
    geneve = struct.pack(">BBHI", 1, 0, 0x6558, 5 << 8) + b"\0" * 4
    erspan3 = struct.pack(">III", 0x2000_0000, 0, 1) + b"\0" * 8
    pptp = struct.pack(">HHHHI", 0x3001, 0x880B, 40, 7, 1) + b"\xff\x03\x00\x21"
    mpls_pw = td.mpls(5, True) + b"\0" * 4 + td.eth(0x0800, inner)
    tags = td.vlan_tag(0x8100, 10) + td.vlan_tag(0x8864, 20)
    frag6 = struct.pack(">BBHI", 6, 0, 1, 9)
    radiotap = struct.pack("<BBHI", 0, 0, 8, 0)
    nflog = b"\x02\0\0\0" + td.nflog_tlv(9, inner)
    return [
        (1, td.outer4(17, td.udp(1, 4789, vx + td.eth(0x0800, inner))), 0x20),
        (1, td.outer4(17, td.udp(2152, 2152, gtp + inner)), 0x80),
        (1, td.outer4(17, td.udp(1, 6081, geneve + td.eth(0x0800, inner))), 0x40),
        (1, td.outer4(47, td.gre(0x22EB, erspan3 + td.eth(0x0800, inner))), 0x18),
        (1, td.outer4(47, pptp + inner), 0x208),
        (1, td.eth(0x8847, mpls_pw), 0x2),
        (1, td.eth(0x88A8, tags + td.pppoe(0x0021, inner)), 0x5),
        (1, td.eth(0x86DD, td.ipv6(44, frag6 + td.tcp(1, 2))), 0),
        (1, td.outer4(4, td.ipv4(41, td.ipv6(17, td.udp(1, 2)))), 0x100),
        (127, radiotap + td.wlan_data(inner, qos=True), 0),
        (239, nflog, 0),
    ]


def test_tunnel_seeds_decode_to_their_inner_packet():
    for linktype, packet, tunnel in tunnel_seeds():
        out, _ = decode_raw([(linktype, packet)])
        assert out[0]["status"] == decode.STATUS_IP
        assert out[0]["tunnel"] == tunnel


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from(tunnel_seeds()),
    st.lists(st.tuples(st.integers(0, 160), st.integers(0, 255)), max_size=6),
    st.integers(0, 170),
)
def test_mutated_tunnel_packets_never_crash(seed, flips, cut):
    linktype, packet, _ = seed
    buf = bytearray(packet)
    for pos, value in flips:
        if pos < len(buf):
            buf[pos] = value
    out, caplen = decode_raw([(linktype, bytes(buf[:cut]))])
    check_invariants(out, caplen)


# --- pack_records ------------------------------------------------------------


def read_records(blob: bytes, nano: bool) -> list[tuple[int, int, int, int, bytes]]:
    """(sec, frac, caplen, wirelen, bytes) of each record, parsed by dpkt."""
    magic = dpkt.pcap.TCPDUMP_MAGIC_NANO if nano else dpkt.pcap.TCPDUMP_MAGIC
    header = struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    reader = dpkt.pcap.Reader(__import__("io").BytesIO(header + blob))
    records = []
    pos = 0
    for _ts, buf in reader:
        hdr = dpkt.pcap.LEPktHdr(blob[pos : pos + 16])
        records.append((hdr.tv_sec, hdr.tv_usec, hdr.caplen, hdr.len, bytes(buf)))
        pos += 16 + hdr.caplen
    return records


@pytest.mark.parametrize("precision", [6, 9])
def test_pack_records_reads_back_with_dpkt(precision):
    packets = [
        (1_700_000_000_123_456_789, 1514, b"\x01" * 60),
        (5, 0, b""),
        (4_000_000_000_999_999_999, 9000, bytes(range(256)) * 3),
    ]
    batch = PacketBatch.from_list(packets, 1)
    blob = _fastpath.pack_records(
        batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns, precision
    )
    records = read_records(blob, nano=precision == 9)
    assert len(records) == len(packets)
    for (ts_ns, wirelen, buf), (sec, frac, caplen, wire, got) in zip(
        packets, records, strict=True
    ):
        assert sec == ts_ns // 10**9
        assert frac == (ts_ns % 10**9) // (1000 if precision == 6 else 1)
        assert (caplen, wire, got) == (len(buf), wirelen, buf)


def test_pack_records_before_1970_floors_seconds():
    batch = PacketBatch.from_list([(-1_500_000_000, 4, b"abcd")], 1)
    blob = _fastpath.pack_records(
        batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns, 9
    )
    sec, frac = struct.unpack_from("<II", blob)
    assert (sec, frac) == (2**32 - 2, 500_000_000)


@needs_corpus
def test_pack_records_of_a_capture_matches_its_packets():
    path = os.path.join(CORPUS, "arkime/http-post-upload.pcap")
    linktype, packets = read_capture(path)
    batch = PacketBatch.from_list(packets, linktype)
    blob = _fastpath.pack_records(
        batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns, 6
    )
    records = read_records(blob, nano=False)
    assert [r[4] for r in records] == [p[2] for p in packets]


def test_pack_records_rejects_bad_precision():
    batch = PacketBatch.from_list([(0, 1, b"x")], 1)
    with pytest.raises(ValueError, match="precision 7 is not a pcap timestamp unit"):
        _fastpath.pack_records(
            batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns, 7
        )


def test_pack_records_rejects_offsets_past_the_buffer():
    batch = PacketBatch.from_list([(0, 1, b"x"), (0, 2, b"yz")], 1)
    batch.caplen[1] = 3
    with pytest.raises(ValueError, match="packet 1: offset 1 \\+ caplen 3 runs past"):
        _fastpath.pack_records(
            batch.data, batch.offset, batch.caplen, batch.wirelen, batch.ts_ns, 6
        )


# --- argument and layout checks of decode_batch ----------------------------


def small_batch() -> PacketBatch:
    return PacketBatch.from_list([(0, 3, b"abc"), (0, 2, b"de")], 1)


def call_decode(batch: PacketBatch, out: np.ndarray) -> None:
    _fastpath.decode_batch(batch.data, batch.offset, batch.caplen, batch.linktype, out)


def test_decode_batch_rejects_renamed_field():
    names = list(decode.DECODED.names)
    names[names.index("hash")] = "hash32"
    dtype = decode.DECODED.descr
    dtype = np.dtype([(n, d[1], *d[2:]) for n, d in zip(names, dtype, strict=True)])
    with pytest.raises(ValueError, match="no field 'hash'"):
        call_decode(small_batch(), np.zeros(2, dtype=dtype))


def test_decode_batch_rechecks_a_dtype_whose_fields_were_renamed():
    dtype = np.dtype(decode.DECODED.descr)
    out = np.zeros(2, dtype=dtype)
    call_decode(small_batch(), out)
    dtype.names = tuple("hash32" if n == "hash" else n for n in dtype.names)
    with pytest.raises(ValueError, match="no field 'hash'"):
        call_decode(small_batch(), np.zeros(2, dtype=dtype))


def test_decode_batch_rejects_resized_field():
    descr = [
        (n, "<u4" if n == "sport" else decode.DECODED.fields[n][0])
        for n in decode.DECODED.names
    ]
    with pytest.raises(ValueError, match="field 'sport'"):
        call_decode(small_batch(), np.zeros(2, dtype=np.dtype(descr)))


def test_decode_batch_rejects_plain_array_and_wrong_length():
    with pytest.raises(ValueError, match="structured dtype fpc.decode.DECODED"):
        call_decode(small_batch(), np.zeros(2, dtype=np.uint8))
    with pytest.raises(ValueError, match="out holds"):
        call_decode(small_batch(), np.zeros(3, dtype=decode.DECODED))


def test_decode_batch_rejects_read_only_out():
    out = np.zeros(2, dtype=decode.DECODED)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        call_decode(small_batch(), out)


def test_decode_batch_rejects_wrong_array_types():
    batch = small_batch()
    out = np.zeros(2, dtype=decode.DECODED)
    with pytest.raises(ValueError, match="offset has format"):
        _fastpath.decode_batch(
            batch.data,
            batch.offset.astype(np.float64),
            batch.caplen,
            batch.linktype,
            out,
        )
    with pytest.raises(ValueError, match="caplen has 1 items"):
        _fastpath.decode_batch(
            batch.data, batch.offset, batch.caplen[:1], batch.linktype, out
        )


def test_decode_batch_rejects_packet_past_buffer():
    batch = small_batch()
    batch.offset[1] = 4
    with pytest.raises(ValueError, match="packet 1: offset 4 \\+ caplen 2 runs past"):
        call_decode(batch, np.zeros(2, dtype=decode.DECODED))


def test_decode_batch_empty():
    batch = PacketBatch.from_list([], 1)
    assert len(decode.decode_batch(batch)) == 0


# --- lint of the C sources ---------------------------------------------------

CSRC = os.path.join(os.path.dirname(__file__), os.pardir, "csrc")


def test_c_sources_say_gil_and_balance_thread_state():
    for path in sorted(glob.glob(os.path.join(CSRC, "*.[ch]"))):
        with open(path) as f:
            text = f.read()
        header = text.split("*/", 1)[0]
        assert "GIL" in header, (
            f"{path}: module comment must say whether the GIL is held"
        )
        begin = text.count("Py_BEGIN_ALLOW_THREADS")
        assert begin == text.count("Py_END_ALLOW_THREADS"), path
        assert max(len(line) for line in text.splitlines()) <= 100, path


def _scan_arrays(n):
    header_words = [np.zeros(n, dtype=np.uint32) for _ in range(4)]
    return [np.zeros(n, dtype=np.int64), *header_words]


@pytest.mark.parametrize("order", ["<", ">"])
def test_scan_pcap_reads_headers_and_stops_at_a_cut_record(order):
    lengths = [60, 1514, 0, 42]
    buf = b"".join(
        struct.pack(order + "IIII", 100 + i, 7 * i, c, c + 4) + bytes(c)
        for i, c in enumerate(lengths)
    )
    cut = buf[:-1]  # the last record lacks a byte
    out = _scan_arrays(8)
    swap = (order == "<") != (sys.byteorder == "little")
    n, pos, bad = _fastpath.scan_pcap(cut, 0, len(cut), 1 << 20, 65535, swap, *out)
    assert (n, bad) == (3, -1)
    starts = [0, 76, 1606]
    assert pos == 1622 and out[0][:3].tolist() == starts
    assert out[1][:3].tolist() == [100, 101, 102]
    assert out[2][:3].tolist() == [0, 7, 14]
    assert out[3][:3].tolist() == lengths[:3]
    assert out[4][:3].tolist() == [c + 4 for c in lengths[:3]]


def test_scan_pcap_limits_count_bytes_and_caplen():
    rec = struct.pack("<IIII", 1, 0, 100, 100) + bytes(100)
    big = struct.pack("<IIII", 1, 0, 5000, 5000) + bytes(5000)
    buf = rec * 3 + big
    swap = sys.byteorder != "little"
    # the arrays hold two records
    assert _fastpath.scan_pcap(buf, 0, len(buf), 1 << 20, 9000, swap,
                               *_scan_arrays(2))[:2] == (2, 232)  # fmt: skip
    # about 150 bytes: the second record ends past them
    assert _fastpath.scan_pcap(buf, 0, len(buf), 150, 9000, swap,
                               *_scan_arrays(8))[:2] == (1, 116)  # fmt: skip
    # the first record is taken even when alone it exceeds max_bytes
    assert _fastpath.scan_pcap(buf, 348, len(buf), 10, 9000, swap,
                               *_scan_arrays(8))[:2] == (1, len(buf))  # fmt: skip
    # a caplen above the limit stops the walk before that record
    assert _fastpath.scan_pcap(buf, 0, len(buf), 1 << 20, 4000, swap,
                               *_scan_arrays(8)) == (3, 348, 5000)  # fmt: skip


def test_scan_pcap_refuses_bounds_outside_the_buffer_and_bad_arrays():
    out = _scan_arrays(4)
    with pytest.raises(ValueError, match="do not fit"):
        _fastpath.scan_pcap(b"x" * 10, 0, 11, 1, 100, False, *out)
    with pytest.raises(ValueError, match="sec"):
        _fastpath.scan_pcap(b"", 0, 0, 1, 100, False, out[0], out[0], *out[2:])
    frozen = np.zeros(4, dtype=np.uint32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _fastpath.scan_pcap(b"", 0, 0, 1, 100, False, *out[:4], frozen)
