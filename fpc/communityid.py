"""Community ID v1: a flow hash that Zeek, Suricata and Arkime records share.

Computed once per SPI record from the session's endpoints, so analysts can
join fpc sessions with other tools' logs. Spec: the corelight community-id
specification, version 1 (seed 0 unless configured).
"""

from __future__ import annotations

import base64
import hashlib
import struct

PROTO_ICMP = 1
PROTO_ICMPV6 = 58
PORTED = {6, 17, 132}  # TCP, UDP, SCTP

# ICMP types whose reply type is the "port" of the other side, so that a
# request and its reply hash to the same id (two-way message pairs).
_ICMP4_PAIRS = {
    8: 0,
    0: 8,
    13: 14,
    14: 13,
    15: 16,
    16: 15,
    17: 18,
    18: 17,
    10: 9,
    9: 10,
}
_ICMP6_PAIRS = {
    128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135,
    130: 131, 131: 130, 144: 145, 145: 144,
}  # fmt: skip


def _icmp_ports(proto: int, icmp_type: int, icmp_code: int) -> tuple[int, int, bool]:
    pairs = _ICMP4_PAIRS if proto == PROTO_ICMP else _ICMP6_PAIRS
    if icmp_type in pairs:
        return icmp_type, pairs[icmp_type], False
    return icmp_type, icmp_code, True


def community_id(
    saddr: bytes,
    daddr: bytes,
    proto: int,
    sport: int = 0,
    dport: int = 0,
    icmp_type: int = 0,
    icmp_code: int = 0,
    seed: int = 0,
) -> str:
    """The "1:<base64>" id of the flow; addresses are 4 or 16 raw bytes."""
    one_way = False
    if proto in (PROTO_ICMP, PROTO_ICMPV6):
        sport, dport, one_way = _icmp_ports(proto, icmp_type, icmp_code)
    if not one_way and (saddr, sport) > (daddr, dport):
        saddr, daddr, sport, dport = daddr, saddr, dport, sport
    data = struct.pack("!H", seed) + saddr + daddr + struct.pack("!BB", proto, 0)
    if proto in PORTED or proto in (PROTO_ICMP, PROTO_ICMPV6):
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()
