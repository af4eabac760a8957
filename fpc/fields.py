"""Every field of an SPI record: its name, its Elasticsearch type, what it means.

The session table builds records with these names (dotted names are nested
objects in the record dict); the Elasticsearch mapping, the SQLite columns and
docs/FIELDS.md are all derived from this one table. Names follow the Elastic
Common Schema where it has one; the rest live under `fpc.`.
"""

from __future__ import annotations

from typing import Any

from fpc.appl.fields import APP_FIELDS, Field

CORE_FIELDS: tuple[Field, ...] = (
    Field("@timestamp", "date_nanos", "Time of the first packet of the session."),
    Field(
        "event.id", "keyword", "Session id: node, first packet time, key hash, segment."
    ),
    Field("event.start", "date_nanos", "Time of the first packet of this record."),
    Field("event.end", "date_nanos", "Time of the last packet of this record."),
    Field("event.duration", "long", "event.end - event.start in nanoseconds."),
    Field("event.kind", "keyword", "Always 'event'."),
    Field("event.category", "keyword", "Always 'network'."),
    Field("event.dataset", "keyword", "Always 'fpc.session'."),
    Field("observer.name", "keyword", "Node (capture instance) that saw the session."),
    Field("source.ip", "ip", "Address of the client (initiator)."),
    Field("source.port", "integer", "Port of the client; 0 without ports."),
    Field(
        "source.mac",
        "keyword",
        "MACs the client's packets came from or the server's were sent to.",
    ),
    Field("source.packets", "long", "Packets sent by the client."),
    Field("source.bytes", "long", "Bytes on the wire sent by the client."),
    Field("destination.ip", "ip", "Address of the server (responder)."),
    Field("destination.port", "integer", "Port of the server; 0 without ports."),
    Field(
        "destination.mac",
        "keyword",
        "MACs the server's packets came from or the client's were sent to.",
    ),
    Field("destination.packets", "long", "Packets sent by the server."),
    Field("destination.bytes", "long", "Bytes on the wire sent by the server."),
    Field("network.type", "keyword", "ipv4 or ipv6."),
    Field("network.transport", "keyword", "tcp, udp, icmp, ipv6-icmp, sctp, esp, ..."),
    Field("network.iana_number", "keyword", "IP protocol number."),
    Field("network.protocol", "keyword", "First application protocol recognized."),
    Field("network.community_id", "keyword", "Community ID flow hash, version 1."),
    Field("network.packets", "long", "Packets in both directions."),
    Field("network.bytes", "long", "Bytes on the wire in both directions."),
    Field(
        "network.vlan.id",
        "keyword",
        "Outer 802.1Q/802.1ad VLAN id, or ERSPAN's; a list when seen on several.",
    ),
    Field("network.inner.vlan.id", "keyword", "Inner VLAN ids (QinQ)."),
    Field("fpc.session", "keyword", "Session id shared by every segment of a session."),
    Field("fpc.protocols", "keyword", "Every protocol seen: transport, tunnels, apps."),
    Field(
        "fpc.tunnel", "keyword", "Encapsulations peeled off (vlan, gre, vxlan, ...)."
    ),
    Field("fpc.segment", "integer", "Segment number of a long session, from 0."),
    Field("fpc.end_reason", "keyword", "idle, tcp_close, segment, evicted, shutdown."),
    Field(
        "fpc.source.payload_bytes",
        "long",
        "Payload bytes sent by the client. TCP: bytes that advance the stream"
        " (a retransmitted or overlapping byte counts once, nothing is counted"
        " before that side's SYN); UDP, SCTP, ESP: the L4 payload; ICMP, ICMPv6:"
        " the message including its 8-byte header; other protocols: 0.",
    ),
    Field(
        "fpc.destination.payload_bytes",
        "long",
        "Payload bytes sent by the server, counted as fpc.source.payload_bytes.",
    ),
    Field(
        "fpc.ethertype",
        "integer",
        "Ethertype of a non-IP Ethernet session (802.3 LLC without SNAP: its"
        " DSAP); such a session is keyed by MAC pair and ethertype, no IP fields.",
    ),
    Field("fpc.source.ttl", "integer", "TTL / hop limits seen from the client."),
    Field("fpc.destination.ttl", "integer", "TTL / hop limits seen from the server."),
    Field("fpc.tcp.syn", "integer", "TCP packets with SYN and without ACK."),
    Field("fpc.tcp.syn_ack", "integer", "TCP packets with SYN and ACK."),
    Field(
        "fpc.tcp.ack", "integer", "TCP packets with ACK and none of SYN, FIN, RST, PSH."
    ),
    Field("fpc.tcp.psh", "integer", "TCP packets with PSH."),
    Field("fpc.tcp.fin", "integer", "TCP packets with FIN."),
    Field("fpc.tcp.rst", "integer", "TCP packets with RST."),
    Field("fpc.tcp.urg", "integer", "TCP packets with URG."),
    Field("fpc.icmp.type", "integer", "ICMP / ICMPv6 types seen."),
    Field("fpc.icmp.code", "integer", "ICMP / ICMPv6 codes seen."),
    Field("fpc.packet.file", "long", "PCAP file number of each packet.", False),
    Field(
        "fpc.packet.pos", "long", "Packet position (byte offset) of each packet.", False
    ),
    Field("fpc.packet.len", "integer", "Captured length of each packet.", False),
    Field("fpc.truncated", "boolean", "Packet list cut at the per-record limit."),
)

FIELDS: tuple[Field, ...] = CORE_FIELDS + APP_FIELDS
FIELD_TYPES: dict[str, str] = {f.name: f.es_type for f in FIELDS}


def get_path(record: dict[str, Any], name: str) -> object:
    """Value of dotted field `name` in a nested record, or None."""
    node: object = record
    if name in record:
        return record[name]
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def fields_markdown() -> str:
    """docs/FIELDS.md, generated from FIELDS so the two never disagree."""
    lines = [
        "# SPI record fields",
        "",
        "Generated by `python -m fpc.fields > docs/FIELDS.md`; do not edit by hand.",
        "Names follow the Elastic Common Schema where it has one; the rest are",
        "under `fpc.`. Fields not indexed are kept in the record but not searchable.",
        "",
        "| field | type | indexed | meaning |",
        "|---|---|---|---|",
    ]
    for f in FIELDS:
        lines.append(
            f"| `{f.name}` | {f.es_type} | {'yes' if f.indexed else 'no'} | {f.doc} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(fields_markdown(), end="")
