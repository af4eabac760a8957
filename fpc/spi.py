"""Stage 4 of the pipeline: turn a finished session into its SPI record.

In: `fpc.session.Session` objects from the session table. Out: one nested
dict[str, Any] per session (or segment) with the fields of `fpc.fields`, handed to the
store. Runs on the processing thread, once per record.
"""

from __future__ import annotations

import functools
import ipaddress
from datetime import UTC, datetime
from typing import Any

from fpc.communityid import community_id
from fpc.decode import (
    TUNNEL_ERSPAN,
    TUNNEL_GENEVE,
    TUNNEL_GRE,
    TUNNEL_GTP,
    TUNNEL_IPIP,
    TUNNEL_MPLS,
    TUNNEL_PPP,
    TUNNEL_PPPOE,
    TUNNEL_VLAN,
    TUNNEL_VXLAN,
)
from fpc.session import Session

TRANSPORTS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 50: "esp",
              51: "ah", 47: "gre", 2: "igmp", 103: "pim", 89: "ospf"}  # fmt: skip
TUNNEL_NAMES = (
    (TUNNEL_VLAN, "vlan"), (TUNNEL_MPLS, "mpls"), (TUNNEL_PPPOE, "pppoe"),
    (TUNNEL_GRE, "gre"), (TUNNEL_ERSPAN, "erspan"), (TUNNEL_VXLAN, "vxlan"),
    (TUNNEL_GENEVE, "geneve"), (TUNNEL_GTP, "gtp"), (TUNNEL_IPIP, "ipip"),
    (TUNNEL_PPP, "ppp"),
)  # fmt: skip
TCP_FLAG_NAMES = ("syn", "syn_ack", "ack", "psh", "fin", "rst", "urg")
# Protocol names of non-IP Ethernet sessions by ethertype, or by DSAP for 802.3
# LLC frames without SNAP (below 0x100); others are "ether-XXXX" or "llc-XX".
ETHER_NAMES = {0x0806: "arp", 0x8035: "rarp", 0x88CC: "lldp", 0x2000: "cdp",
               0x888E: "eapol", 0x9000: "loopback", 0x8809: "slow",
               0x88F7: "ptp", 0x42: "stp", 0xFE: "isis", 0xF0: "netbios"}  # fmt: skip


def iso_ns(ts_ns: int) -> str:
    """RFC 3339 time with nanoseconds, as Elasticsearch `date_nanos` reads it."""
    sec, frac = divmod(ts_ns, 1_000_000_000)
    return f"{_iso_second(sec)}.{frac:09d}Z"


@functools.lru_cache(maxsize=4096)
def _iso_second(sec: int) -> str:
    # Records that end together share their seconds: strftime once per second.
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@functools.lru_cache(maxsize=65536)
def _ip_text(addr: bytes) -> str:
    # ipaddress objects cost more than the rest of a record side; a capture
    # holds far fewer addresses than sessions.
    return str(ipaddress.ip_address(addr))


def session_id(node: str, sess: Session) -> str:
    """Stable id of a session: node, packet position and time of its first
    packet, key hash. The position tells apart the same packets read twice."""
    file_num, pos = sess.first_pos
    return f"{node}-{file_num}-{pos}-{sess.session_ts:x}-{sess.hash:08x}"


def record_id(node: str, sess: Session) -> str:
    """Id of one SPI record: the session id, plus the segment number past 0."""
    return _record_id(session_id(node, sess), sess)


def _record_id(sid: str, sess: Session) -> str:
    return sid if sess.segment == 0 else f"{sid}.{sess.segment}"


def _endpoints(sess: Session) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    """(address, port) of the lower and higher key endpoints."""
    key = sess.key.ljust(44, b"\0")
    width = 4 if sess.ip_version == 4 else 16
    lo = (key[0:width], int.from_bytes(key[32:34], "big"))
    hi = (key[16 : 16 + width], int.from_bytes(key[34:36], "big"))
    return lo, hi


@functools.lru_cache(maxsize=65536)
def _mac(raw: bytes) -> str:
    # A capture holds far fewer MAC addresses than sessions.
    return raw.hex("-").upper()


def _side(sess: Session, s: int, addr: bytes, port: int) -> dict[str, Any]:
    return {
        "ip": _ip_text(addr),
        "port": port,
        "mac": _mac_texts(sess.macs[s]),
        "packets": sess.packets[s],
        "bytes": sess.bytes[s],
    }


def _link_side(sess: Session, s: int) -> dict[str, Any]:
    return {
        "mac": _mac_texts(sess.macs[s]),
        "packets": sess.packets[s],
        "bytes": sess.bytes[s],
    }


def _mac_texts(macs: set[bytes]) -> list[str]:
    """The side's MAC addresses as text, sorted; all-zero ones left out."""
    return sorted([_mac(m) for m in macs if m != _ZERO_MAC])


_ZERO_MAC = bytes(6)


def ether_name(ethertype: int) -> str:
    if ethertype in ETHER_NAMES:
        return ETHER_NAMES[ethertype]
    return f"llc-{ethertype:02x}" if ethertype < 0x100 else f"ether-{ethertype:04x}"


def build_record(node: str, sess: Session) -> dict[str, Any]:
    """The SPI record of `sess` (see docs/FIELDS.md for every field)."""
    if sess.ip_version == 0:
        return _link_record(node, sess)
    ends = _endpoints(sess)
    c, s = sess.client, sess.client ^ 1
    transport = TRANSPORTS.get(sess.proto, str(sess.proto))
    app = sess.app
    tunnels = _tunnels(sess.tunnel)
    app_protocols = app.protocols() if app is not None else []
    sid = session_id(node, sess)
    start = iso_ns(sess.first_ts)
    record: dict[str, Any] = {
        "@timestamp": start,
        "event": _event(sid, sess, start),
        "observer": {"name": node},
        "source": _side(sess, c, *ends[c]),
        "destination": _side(sess, s, *ends[s]),
        "network": _network(sess, transport, ends, app_protocols),
        "fpc": _fpc(sid, sess, [transport, *tunnels, *app_protocols], tunnels),
    }
    if app is not None:
        for name, values in app.fields().items():
            _put(record, name, values)
    _related_ips(record)
    return record


def _related_ips(record: dict[str, Any]) -> None:
    """related.ip: the endpoints' addresses, then those the parsers named."""
    named = record.get("related", {}).get("ip", [])
    ips = [record["source"]["ip"], record["destination"]["ip"], *named]
    record["related"] = {"ip": list(dict.fromkeys(ips))}


def _tunnels(bits: int) -> list[str]:
    return [n for bit, n in TUNNEL_NAMES if bits & bit] if bits else []


def _link_record(node: str, sess: Session) -> dict[str, Any]:
    """The record of a non-IP Ethernet session: MACs, counts, no IP fields."""
    c, s = sess.client, sess.client ^ 1
    ethertype = int.from_bytes(sess.key.ljust(44, b"\0")[42:44], "big")
    net: dict[str, Any] = {
        "packets": sum(sess.packets),
        "bytes": sum(sess.bytes),
        **_vlans(sess),
    }
    sid = session_id(node, sess)
    fpc = _fpc(sid, sess, [ether_name(ethertype)], _tunnels(sess.tunnel))
    fpc["ethertype"] = ethertype
    start = iso_ns(sess.first_ts)
    return {
        "@timestamp": start,
        "event": _event(sid, sess, start),
        "observer": {"name": node},
        "source": _link_side(sess, c),
        "destination": _link_side(sess, s),
        "network": net,
        "fpc": fpc,
    }


def _event(sid: str, sess: Session, start: str) -> dict[str, Any]:
    return {
        "id": _record_id(sid, sess),
        "start": start,
        "end": iso_ns(sess.last_ts),
        "duration": sess.last_ts - sess.first_ts,
        "kind": "event",
        "category": ["network"],
        "dataset": "fpc.session",
    }


def _network(
    sess: Session, transport: str, ends: tuple[Any, ...], apps: list[str]
) -> dict[str, Any]:
    packets, nbytes = sess.packets, sess.bytes
    net: dict[str, Any] = {
        "type": f"ipv{sess.ip_version}",
        "transport": transport,
        "iana_number": str(sess.proto),
        "community_id": _community_id(sess, ends),
        "packets": packets[0] + packets[1],
        "bytes": nbytes[0] + nbytes[1],
    }
    if apps:
        net["protocol"] = apps[0]
    if sess.vlan[0] or sess.vlan[1]:
        net.update(_vlans(sess))
    return net


def _vlans(sess: Session) -> dict[str, Any]:
    outer, inner = sess.vlan
    out: dict[str, Any] = {}
    if outer:
        out["vlan"] = {"id": _vlan_ids(outer)}
    if inner:
        out["inner"] = {"vlan": {"id": _vlan_ids(inner)}}
    return out


def _vlan_ids(ids: list[int]) -> str | list[str]:
    """One VLAN id as a string; several (one session seen on several VLANs)
    as a sorted list."""
    if len(ids) == 1:
        return str(ids[0])
    return [str(i) for i in sorted(ids)]


def _community_id(sess: Session, ends: tuple[Any, ...]) -> str:
    (a_addr, a_port), (b_addr, b_port) = ends[sess.client], ends[sess.client ^ 1]
    # ICMP hashes the type and code of the session's first packet (the client's).
    icmp_type, icmp_code = sess.icmp[0] if sess.icmp else (0, 0)
    return community_id(
        a_addr, b_addr, sess.proto, a_port, b_port, icmp_type, icmp_code
    )


def _fpc(
    sid: str, sess: Session, protocols: list[str], tunnels: list[str]
) -> dict[str, Any]:
    c, s = sess.client, sess.client ^ 1
    out: dict[str, Any] = {
        "session": sid,
        "protocols": protocols,
        "segment": sess.segment,
        "end_reason": sess.end_reason,
        "source": {"payload_bytes": sess.payload[c], "ttl": sorted(sess.ttls[c])},
        "destination": {"payload_bytes": sess.payload[s], "ttl": sorted(sess.ttls[s])},
        "packet": {
            "file": sess.file.tolist(),
            "pos": sess.pos.tolist(),
            "len": sess.plen.tolist(),
        },
    }
    if tunnels:
        out["tunnel"] = tunnels
    if sess.proto == 6:
        out["tcp"] = dict(zip(TCP_FLAG_NAMES, sess.tcp, strict=True))
    if sess.icmp:
        out["icmp"] = {
            "type": sorted({t for t, _ in sess.icmp}),
            "code": sorted({c for _, c in sess.icmp}),
        }
    return out


def _put(record: dict[str, Any], dotted: str, value: object) -> None:
    node = record
    *parents, leaf = _field_path(dotted)
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


@functools.lru_cache(maxsize=1024)
def _field_path(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))
