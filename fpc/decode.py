"""Stage 2 of the pipeline: decode the headers of a whole batch in one C call.

In: a `PacketBatch` from a reader. Out: one row of `DECODED` per packet, filled
by `fpc._fastpath.decode_batch`, which the session table groups by `key`.
Runs on the processing thread; the C code releases the GIL while it decodes and
keeps no state.

Sessions are built on the innermost IP packet: link layer, VLAN/QinQ, MPLS,
PPPoE and tunnels (GRE incl. ERSPAN I/II/III and PPP, VXLAN, Geneve, GTP-U,
IP-in-IP, IPv6-in-IPv4) are peeled off first.
"""

from __future__ import annotations

import numpy as np

from fpc import _fastpath
from fpc.packets import PacketBatch

# What became of a packet; every packet gets exactly one status.
STATUS_IP = 0  # an IP packet with a session key
STATUS_NON_IP = 1  # a valid frame that is not IP and has no Ethernet header
STATUS_MALFORMED = 2  # truncated or inconsistent headers
STATUS_UNSUPPORTED_LINK = 3  # a link type fpc does not decode
# A non-IP Ethernet frame (ARP, LLDP, STP, ...) with a session key: its MACs as
# addresses, IP version 0, its ethertype (802.3 LLC without SNAP: its DSAP) in
# the last 2 bytes.
STATUS_LINK = 4

# Bits of `tunnel`: which encapsulations were peeled off to reach the inner IP.
TUNNEL_VLAN = 1 << 0
TUNNEL_MPLS = 1 << 1
TUNNEL_PPPOE = 1 << 2
TUNNEL_GRE = 1 << 3
TUNNEL_ERSPAN = 1 << 4
TUNNEL_VXLAN = 1 << 5
TUNNEL_GENEVE = 1 << 6
TUNNEL_GTP = 1 << 7
TUNNEL_IPIP = 1 << 8
TUNNEL_PPP = 1 << 9

# Flag bits of `frag`: the packet is an IP fragment.
FRAG_MORE = 1  # more fragments follow (MF bit / IPv6 M flag)
FRAG_NONFIRST = 2  # fragment offset > 0: no L4 header in this packet

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR = (
    1,
    2,
    4,
    8,
    16,
    32,
    64,
    128,
)

# Byte layout of `key` (big-endian numbers): lower address (16), higher address
# (16), port of the lower endpoint (2), port of the higher (2), IP protocol (1),
# IP version (1), outer VLAN id (2), inner VLAN id (2), zero (2); the VLAN ids are
# zero unless decode_batch keys by VLAN. "Lower" compares
# (address bytes, port) as a tuple. numpy strips trailing zero bytes of "S"
# fields when they are read as `bytes`; pad with ljust() before slicing.
KEY_LAYOUT = "16s16sHHBBHH2x"

# One decoded packet. Addresses are 16 bytes; IPv4 uses the first 4 and zeros.
# `key` is the normalized session key: the lower (address, port) endpoint
# first, so both directions of a session get the same key; `reverse` is 1 when
# the packet travels from the second endpoint of the key to the first.
DECODED = np.dtype(
    [
        ("status", np.uint8),
        ("ip_version", np.uint8),  # 4, 6 or 0
        ("proto", np.uint8),  # IP protocol of the innermost IP header
        ("tcp_flags", np.uint8),
        ("frag", np.uint8),  # FRAG_* bits
        ("ttl", np.uint8),  # TTL / hop limit of the innermost IP header
        ("reverse", np.uint8),
        ("vlan_count", np.uint8),
        ("vlan", np.uint16, (2,)),  # outermost two 802.1Q/802.1ad ids
        ("ethertype", np.uint16),  # last ethertype seen; LLC without SNAP: DSAP
        ("sport", np.uint16),  # TCP/UDP/SCTP ports; 0 for other protocols
        ("dport", np.uint16),
        ("icmp_type", np.uint8),  # ICMP / ICMPv6 type and code
        ("icmp_code", np.uint8),
        ("tunnel", np.uint16),  # TUNNEL_* bits
        ("l3_offset", np.uint16),  # innermost IP header, from packet start
        ("payload_offset", np.uint16),  # L4 payload, from packet start
        ("payload_len", np.uint32),  # per IP length, clipped to caplen
        ("ip_id", np.uint32),  # IPv4 id or IPv6 fragment id
        ("frag_offset", np.uint16),  # in bytes
        ("seq", np.uint32),
        ("ack", np.uint32),
        ("src", "S16"),
        ("dst", "S16"),
        ("src_mac", "S6"),  # innermost Ethernet header; zeros if none
        ("dst_mac", "S6"),
        ("key", "S44"),  # see KEY_LAYOUT
        ("hash", np.uint32),  # symmetric hash of key, same in both directions
    ]
)


def decode_batch(batch: PacketBatch, key_vlan: bool = False) -> np.ndarray:
    """Decode every packet of `batch`; returns an array of `DECODED` rows.

    With `key_vlan` the session key holds the VLAN ids (outer two), so the
    same 5-tuple on two VLANs is two sessions; by default it is one.
    """
    out = np.zeros(len(batch), dtype=DECODED)
    _fastpath.decode_batch(
        batch.data, batch.offset, batch.caplen, batch.linktype, out, key_vlan
    )
    return out
