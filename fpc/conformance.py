"""Conformance run: fpc's SPI records checked against Arkime's expected sessions.

In: a corpus folder whose `arkime/` holds NAME.pcap + NAME.test pairs (the
test captures of Arkime and the session documents Arkime indexes for them).
Each capture is ingested on its own by an in-process `Pipeline` with a fresh
data dir; our records are matched to Arkime's sessions by 5-tuple (either
orientation) and first packet time, and field after field is compared after
normalizing both sides. Out: a summary table on stdout and a JSON report.
Up to WORKERS captures are ingested at once on worker threads; nothing here
touches a live interface.

docs/ARKIME.md maps Arkime's fields to ours and documents every normalization;
docs/conformance-explained.toml lists the deliberate differences, which the
run counts as "explained" rather than agreed.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from fpc.appl.sink import MAX_VALUE_CHARS
from fpc.errors import CaptureError
from fpc.fields import FIELD_TYPES, get_path

logger = logging.getLogger(__name__)

Record = dict[str, Any]  # an SPI record or an Arkime session document

WORKERS = 4  # captures ingested at once
MATCH_WINDOW_MS = 60_000  # first packets further apart are different sessions
EXPLAINED_PATH = Path(__file__).parents[1] / "docs" / "conformance-explained.toml"
L3L4 = "l3l4"
APP = "app"
SESSION = "session"

# fpc protocol names Arkime spells differently; None: Arkime never lists it.
PROTOCOL_NAMES: dict[str, str | None] = {
    "ipv6-icmp": "icmp",
    "vlan": None,  # Arkime shows VLANs in network.vlan.id, not in `protocol`
    "ipip": None,  # IP-in-IP is not a protocol name in Arkime
    "erspan": None,  # Arkime lists only the GRE carrying it
}
# Names of non-IP Ethernet sessions Arkime has no name for (it lists them as
# unknown-ether or corrupt-ether), nor has fpc's "ether-XXXX"/"llc-XX".
FPC_ONLY_NAMES = frozenset({"loopback", "cdp", "slow", "ptp", "netbios", "stp"})
# Arkime protocol names fpc does not tell apart from another one.
ARKIME_PROTOCOL_NAMES: dict[str, str] = {
    "vxlan-gpe": "vxlan",  # fpc's decoder marks VXLAN and VXLAN-GPE alike
}


# --- normalizers -----------------------------------------------------------


def norm_ip(value: object) -> str:
    """Canonical text of an IPv4/IPv6 address (Arkime writes long IPv6 forms)."""
    try:
        return ipaddress.ip_address(str(value)).compressed
    except ValueError:
        return str(value)


def norm_mac(value: object) -> str:
    """MAC as lowercase colon-separated hex (fpc writes ECS '00-1F-...')."""
    return str(value).lower().replace("-", ":")


def iso_to_ms(value: str) -> int:
    """Milliseconds since the epoch of an RFC 3339 time with up to 9 decimals."""
    base, _, frac = value.rstrip("Z").partition(".")
    sec = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(sec.timestamp()) * 1000 + int((frac + "000")[:3])


def to_int(value: object) -> int:
    """Integer of a count or number that may arrive as text; None is 0."""
    return 0 if value is None or value == "" else int(str(value))


def as_list(value: object) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def value_set(value: object, norm: Callable[[Any], object] = str) -> frozenset[Any]:
    return frozenset(norm(v) for v in as_list(value) if v is not None and v != "")


def norm_tls_version(version: str, protocol: str) -> str:
    """fpc ('1.2', 'tls') to Arkime's 'TLSv1.2'; TLS 1.0 is 'TLSv1', SSL 3 'SSLv3'."""
    if protocol == "ssl":
        return "SSLv" + version.removesuffix(".0")
    head, _, rest = version.partition("-")
    head = "1" if head == "1.0" else head
    return "TLSv" + head + ("-" + rest if rest else "")


def uri_parts(uri: str) -> tuple[str, str]:
    """(path, query) of an Arkime URI, which starts with the host or a scheme."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri
    slash = rest.find("/")
    if slash < 0:  # CONNECT: the target is host:port, with no path
        return "", ""
    path, _, query = rest[slash:].partition("?")
    return path, query


def is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes '²' and other scripts' digits."""
    return text.isascii() and text.isdigit()


def norm_host(value: object) -> str:
    """Host header value, lowercase, without the port (Arkime keeps both forms)."""
    host = str(value).lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    name, colon, port = host.rpartition(":")
    return name if colon and is_number(port) and ":" not in name else host


def norm_dns_name(value: object) -> str:
    """Query name in Unicode, lowercase; the root is '<root>' as Arkime writes it."""
    name = str(value).lower().rstrip(".") or "<root>"
    if "xn--" in name:
        try:
            name = name.encode("ascii").decode("idna")
        except UnicodeError:
            pass
    return name


def norm_rcode(value: object) -> str:
    """DNS response code name; Arkime spells IANA's NOTIMP as NOTIMPL."""
    return {"NOTIMP": "NOTIMPL"}.get(str(value).upper(), str(value).upper())


def norm_protocols(names: Iterable[str]) -> frozenset[str]:
    out = set()
    for name in names:
        # fpc names an IP protocol it has no name for by its number
        mapped = "unknown-ip" if is_number(name) else PROTOCOL_NAMES.get(name, name)
        if (
            mapped is not None
            and mapped not in FPC_ONLY_NAMES
            and not (mapped.startswith(("ether-", "llc-")))
        ):
            out.add(mapped)
    return frozenset(out)


def fpc_protocol_names() -> frozenset[str]:
    """Every protocol name fpc can put in a record, in Arkime's spelling."""
    from fpc.appl import ntlm, registered_names
    from fpc.appl.registry import registered_specs
    from fpc.spi import ETHER_NAMES, TRANSPORTS, TUNNEL_NAMES

    names = [*TRANSPORTS.values(), *(n for _, n in TUNNEL_NAMES), *registered_names()]
    names += [n for spec in registered_specs() for n in spec.also_names]
    names.append(ntlm.PROTOCOL)
    names += [n for n in ETHER_NAMES.values() if n not in FPC_ONLY_NAMES]
    return norm_protocols([*names, "0"])


# --- sessions on both sides ------------------------------------------------


@dataclass
class Side:
    """One session of either engine, with what matching needs."""

    doc: Record
    proto: int
    src: tuple[str, int]
    dst: tuple[str, int]
    first_ms: int

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.proto, *sorted([self.src, self.dst]))

    @property
    def label(self) -> str:
        def ep(e: tuple[str, int]) -> str:
            return f"[{e[0]}]:{e[1]}" if ":" in e[0] else f"{e[0]}:{e[1]}"

        return f"{self.proto} {ep(self.src)} > {ep(self.dst)}"


def arkime_side(body: Record) -> Side:
    src, dst = body.get("source", {}), body.get("destination", {})
    return Side(
        doc=body,
        proto=int(body.get("ipProtocol", 0)),
        src=(norm_ip(src.get("ip", "")), int(src.get("port", 0))),
        dst=(norm_ip(dst.get("ip", "")), int(dst.get("port", 0))),
        first_ms=int(body["firstPacket"]),
    )


def fpc_side(record: Record) -> Side:
    src, dst = record["source"], record["destination"]
    return Side(
        doc=record,
        proto=to_int(get_path(record, "network.iana_number")),
        src=(norm_ip(src.get("ip", "")), int(src.get("port", 0))),
        dst=(norm_ip(dst.get("ip", "")), int(dst.get("port", 0))),
        first_ms=iso_to_ms(str(get_path(record, "event.start"))),
    )


@dataclass
class Matching:
    pairs: list[tuple[Side, Side]] = field(default_factory=list)  # (arkime, fpc)
    arkime_only: list[Side] = field(default_factory=list)
    fpc_only: list[Side] = field(default_factory=list)


def match_sessions(arkime: list[Side], ours: list[Side]) -> Matching:
    """Pair sessions with the same 5-tuple, closest first packet times first."""
    candidates = []
    for i, a in enumerate(arkime):
        for j, f in enumerate(ours):
            gap = abs(a.first_ms - f.first_ms)
            if a.key == f.key and gap <= MATCH_WINDOW_MS:
                candidates.append((gap, i, j))
    used_a: set[int] = set()
    used_f: set[int] = set()
    out = Matching()
    for _, i, j in sorted(candidates):
        if i not in used_a and j not in used_f:
            used_a.add(i)
            used_f.add(j)
            out.pairs.append((arkime[i], ours[j]))
    out.arkime_only = [a for i, a in enumerate(arkime) if i not in used_a]
    out.fpc_only = [f for j, f in enumerate(ours) if j not in used_f]
    return out


def orient(record: Record, arkime: Side) -> tuple[Record, bool]:
    """fpc's record with its sides swapped if Arkime calls the other end client."""
    f = fpc_side(record)
    if f.src == arkime.src or f.src != arkime.dst:
        return record, False
    out = dict(record, source=record["destination"], destination=record["source"])
    inner = dict(record.get("fpc", {}))
    inner["source"], inner["destination"] = (
        inner.get("destination", {}),
        inner.get("source", {}),
    )
    out["fpc"] = inner
    return out, True


# --- fields compared -------------------------------------------------------

Getter = Callable[[Record], object]


@dataclass(frozen=True)
class FieldSpec:
    """One row of the report: an Arkime field, our field(s), how to compare."""

    name: str  # Arkime's field name, as the report shows it
    group: str  # L3L4 or APP
    arkime: Getter  # normalized Arkime value, None when absent
    ours: Getter  # normalized fpc value (sides already oriented like Arkime's)
    needs: tuple[str, ...]  # fpc fields it reads; row skipped if one is unknown
    applies: Callable[[Record, Record], bool] | None = None  # (arkime, fpc) -> bool


def a_int(path: str) -> Getter:
    def get(doc: Record) -> object:
        value = get_path(doc, path)
        return None if value is None else to_int(value)

    return get


def a_set(path: str, norm: Callable[[Any], object] = str) -> Getter:
    return lambda doc: value_set(get_path(doc, path), norm)


def f_sets(*paths: str, norm: Callable[[Any], object] = str) -> Getter:
    def get(doc: Record) -> object:
        return frozenset().union(*(value_set(get_path(doc, p), norm) for p in paths))

    return get


def f_ms(path: str) -> Getter:
    return lambda doc: iso_to_ms(str(get_path(doc, path)))


def f_total(*paths: str) -> Getter:
    return lambda doc: sum(to_int(get_path(doc, p)) for p in paths)


def lower(value: object) -> str:
    return str(value).lower()


def arkime_dns(key: str, norm: Callable[[Any], object] = str) -> Getter:
    """Values of `key` over every DNS query Arkime keeps (a list of objects)."""

    def get(doc: Record) -> object:
        out: set[object] = set()
        for query in as_list(doc.get("dns")):
            out |= value_set(query.get(key), norm)
        return frozenset(out)

    return get


ANSWER_KEYS = ("ip", "cname", "mx", "nameserver", "txt", "caa")


def arkime_dns_answers(doc: Record) -> object:
    """Data of every DNS record Arkime keeps (address, name, text, ...).

    A TXT record's strings are joined, as fpc joins them; a CAA record drops
    Arkime's leading 'CAA '.
    """
    out: set[object] = set()
    for query in as_list(doc.get("dns")):
        for answer in as_list(query.get("answers")):
            for key in ANSWER_KEYS:
                value = answer.get(key)
                if key == "txt" and isinstance(value, list):
                    value = "".join(map(str, value))
                elif key == "caa" and value is not None:
                    value = str(value).removeprefix("CAA ")
                if value is not None:
                    out.add(norm_answer(value))
    return frozenset(out)


DNS_RECORD_FIELDS = ("dns.answers.data", "fpc.dns.authority.data",
                     "fpc.dns.additional.data")  # fmt: skip


def fpc_dns_records(doc: Record) -> object:
    """Data of the records of every section, as Arkime's regression config
    keeps them (parseDNSRecordAll), less PTR names (Arkime keeps no PTR data)."""
    records = f_sets(*DNS_RECORD_FIELDS, norm=norm_answer)(doc)
    assert isinstance(records, frozenset)
    return records - value_set(get_path(doc, "fpc.dns.ptr"), norm_answer)


def norm_answer(value: object) -> str:
    """An address in canonical form, anything else lowercase."""
    text = str(value)
    try:
        return ipaddress.ip_address(text).compressed
    except ValueError:
        return text.lower()


def arkime_uri(part: int) -> Getter:
    def get(doc: Record) -> object:
        uris = as_list(get_path(doc, "http.uri"))
        return frozenset(p for u in uris if (p := uri_parts(str(u))[part]))

    return get


def arkime_http_methods(doc: Record) -> object:
    """Arkime's methods, less the 'PRI' its HTTP/1 parser reads in the
    connection preface of cleartext HTTP/2 (fpc does not count it a request)."""
    methods = value_set(get_path(doc, "http.method"))
    if "http2" in as_list(doc.get("protocol")):
        methods -= {"PRI"}
    return methods


def not_http2(arkime: Record, ours: Record) -> bool:
    """Arkime keeps no http.uri from HTTP/2 streams (only the preface's '*')."""
    return "http2" not in as_list(arkime.get("protocol"))


def arkime_protocol_names(doc: Record) -> frozenset[str]:
    names = as_list(doc.get("protocol"))
    return norm_protocols(ARKIME_PROTOCOL_NAMES.get(n, n) for n in names)


def arkime_protocols(doc: Record) -> object:
    return arkime_protocol_names(doc) & fpc_protocol_names()


def fpc_protocols(doc: Record) -> object:
    return norm_protocols(as_list(get_path(doc, "fpc.protocols")))


def fpc_tls_versions(doc: Record) -> object:
    versions = as_list(get_path(doc, "tls.version"))
    protocols = as_list(get_path(doc, "tls.version_protocol"))
    protocols += ["tls"] * (len(versions) - len(protocols))
    return frozenset(
        norm_tls_version(v, p) for v, p in zip(versions, protocols, strict=True)
    )


def fpc_vlans(doc: Record) -> object:
    return f_sets("network.vlan.id", "network.inner.vlan.id", norm=int)(doc)


def fpc_packet_lens(doc: Record) -> object:
    """Record lengths as Arkime counts them: 16-byte pcap record header included."""
    return tuple(int(n) + 16 for n in as_list(get_path(doc, "fpc.packet.len")))


def is_tcp(arkime: Record, ours: Record) -> bool:
    return int(arkime.get("ipProtocol", 0)) == 6


def has_protocol(name: str) -> Callable[[Record, Record], bool]:
    def applies(arkime: Record, ours: Record) -> bool:
        return name in as_list(arkime.get("protocol")) or name in as_list(
            get_path(ours, "fpc.protocols")
        )

    return applies


def tcp_flag(arkime_name: str, our_name: str) -> FieldSpec:
    return FieldSpec(
        f"tcpflags.{arkime_name}",
        L3L4,
        a_int(f"tcpflags.{arkime_name}"),
        a_int(f"fpc.tcp.{our_name}"),
        (f"fpc.tcp.{our_name}",),
        is_tcp,
    )


def l3l4_specs() -> list[FieldSpec]:
    s = FieldSpec
    return [
        s("source.packets", L3L4, a_int("source.packets"), a_int("source.packets"),
          ("source.packets",)),
        s("destination.packets", L3L4, a_int("destination.packets"),
          a_int("destination.packets"), ("destination.packets",)),
        s("source.bytes", L3L4, a_int("source.bytes"), a_int("source.bytes"),
          ("source.bytes",)),
        s("destination.bytes", L3L4, a_int("destination.bytes"),
          a_int("destination.bytes"), ("destination.bytes",)),
        s("client.bytes", L3L4, a_int("client.bytes"),
          a_int("fpc.source.payload_bytes"), ("fpc.source.payload_bytes",)),
        s("server.bytes", L3L4, a_int("server.bytes"),
          a_int("fpc.destination.payload_bytes"), ("fpc.destination.payload_bytes",)),
        s("totDataBytes", L3L4, a_int("totDataBytes"),
          f_total("fpc.source.payload_bytes", "fpc.destination.payload_bytes"),
          ("fpc.source.payload_bytes", "fpc.destination.payload_bytes")),
        s("network.packets", L3L4, a_int("network.packets"), a_int("network.packets"),
          ("network.packets",)),
        s("network.bytes", L3L4, a_int("network.bytes"), a_int("network.bytes"),
          ("network.bytes",)),
        s("firstPacket", L3L4, a_int("firstPacket"), f_ms("event.start"),
          ("event.start",)),
        s("lastPacket", L3L4, a_int("lastPacket"), f_ms("event.end"), ("event.end",)),
        s("network.community_id", L3L4, a_set("network.community_id"),
          a_set("network.community_id"), ("network.community_id",)),
        s("protocol", L3L4, arkime_protocols, fpc_protocols, ("fpc.protocols",)),
        s("network.vlan.id", L3L4, a_set("network.vlan.id", int), fpc_vlans,
          ("network.vlan.id", "network.inner.vlan.id")),
        s("source.mac", L3L4, a_set("source.mac", norm_mac),
          a_set("source.mac", norm_mac), ("source.mac",)),
        s("destination.mac", L3L4, a_set("destination.mac", norm_mac),
          a_set("destination.mac", norm_mac), ("destination.mac",)),
        s("icmp.type", L3L4, a_set("icmp.type", int), a_set("fpc.icmp.type", int),
          ("fpc.icmp.type",)),
        s("icmp.code", L3L4, a_set("icmp.code", int), a_set("fpc.icmp.code", int),
          ("fpc.icmp.code",)),
        s("packetLen", L3L4, lambda d: tuple(as_list(d.get("packetLen"))),
          fpc_packet_lens, ("fpc.packet.len",)),
        *(tcp_flag(a, o) for a, o in TCP_FLAGS),
    ]  # fmt: skip


TCP_FLAGS = (("syn", "syn"), ("syn-ack", "syn_ack"), ("ack", "ack"), ("psh", "psh"),
             ("fin", "fin"), ("rst", "rst"), ("urg", "urg"))  # fmt: skip


def app_specs() -> list[FieldSpec]:
    s = FieldSpec
    host_fields = ("url.domain", "tls.client.server_name")
    # Arkime keeps the TLS SNI in http.host, next to the Host header values.
    hosts = f_sets(*host_fields, norm=norm_host)
    return [
        s("http.method", APP, arkime_http_methods, a_set("http.request.method"),
          ("http.request.method",)),
        s("http.host", APP, a_set("http.host", norm_host), hosts, host_fields,
          has_protocol("http")),
        s("http.path", APP, a_set("http.path"), a_set("url.path"), ("url.path",)),
        s("http.uri", APP, arkime_uri(0), a_set("url.path"), ("url.path",),
          not_http2),
        s("http.uri.query", APP, arkime_uri(1), a_set("url.query"), ("url.query",)),
        s("http.statuscode", APP, a_set("http.statuscode", int),
          a_set("http.response.status_code", int), ("http.response.status_code",)),
        s("http.useragent", APP, a_set("http.useragent"),
          a_set("user_agent.original"), ("user_agent.original",)),
        s("dns.queryHost", APP, arkime_dns("queryHost", norm_dns_name),
          a_set("dns.question.name", norm_dns_name), ("dns.question.name",)),
        s("dns.qt", APP, arkime_dns("qt"), a_set("dns.question.type"),
          ("dns.question.type",)),
        s("dns.status", APP, arkime_dns("status", norm_rcode),
          a_set("dns.response_code", norm_rcode),
          ("dns.response_code",)),
        s("dns.ip", APP, arkime_dns("ip", norm_ip), a_set("dns.resolved_ip", norm_ip),
          ("dns.resolved_ip",)),
        s("dns.answers", APP, arkime_dns_answers, fpc_dns_records,
          (*DNS_RECORD_FIELDS, "fpc.dns.ptr")),
        s("tls.version", APP, a_set("tls.version"), fpc_tls_versions,
          ("tls.version", "tls.version_protocol")),
        s("tls.cipher", APP, a_set("tls.cipher"), a_set("tls.cipher"),
          ("tls.cipher",)),
        s("tls.ja3", APP, a_set("tls.ja3"), a_set("tls.client.ja3"),
          ("tls.client.ja3",)),
        s("tls.ja3s", APP, a_set("tls.ja3s"), a_set("tls.server.ja3s"),
          ("tls.server.ja3s",)),
        s("tls.sni (http.host)", APP, a_set("http.host", norm_host), hosts, host_fields,
          has_protocol("tls")),
        s("ssh.version", APP, a_set("ssh.version", lower),
          f_sets("fpc.ssh.client", "fpc.ssh.server", norm=lower),
          ("fpc.ssh.client", "fpc.ssh.server")),
        # Arkime keeps a SOCKS destination address in socks.ip, a name in socks.host
        s("socks.host", APP, f_sets("socks.host", "socks.ip", norm=norm_host),
          a_set("fpc.socks.host", norm_host),
          ("fpc.socks.host",)),
        s("socks.port", APP, a_set("socks.port", int), a_set("fpc.socks.port", int),
          ("fpc.socks.port",)),
        s("socks.user", APP, a_set("socks.user"), a_set("fpc.socks.user"),
          ("fpc.socks.user",)),
    ]  # fmt: skip


def active_specs() -> list[FieldSpec]:
    """The rows fpc can answer today: every field they read must exist."""
    from fpc.conformance_app import app_detail_specs  # it imports this module

    specs = l3l4_specs() + app_specs() + app_detail_specs()
    return [s for s in specs if all(n in FIELD_TYPES for n in s.needs)]


# --- deliberate differences ------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """A documented, deliberate difference (docs/conformance-explained.toml).

    `capture`, `field` and `session` are shell-style patterns (fnmatch): "*"
    matches every capture, every row or every session; `field` may also be a
    list of patterns. `field` "session"
    stands for a session only one engine made. `when` narrows it to a kind of
    difference; WHEN_CHECKS lists them.
    """

    capture: str  # capture name without .pcap
    field: str | tuple[str, ...]  # report row(s)
    reason: str
    session: str = "*"  # session label as the report prints it, e.g. "6 *"
    when: str = ""  # "" any difference, else a key of WHEN_CHECKS

    def __post_init__(self) -> None:
        if self.when and self.when not in WHEN_CHECKS:
            choices = ", ".join(sorted(WHEN_CHECKS))
            raise ValueError(f"when = {self.when!r} is unknown; use one of {choices}")

    def covers(self, capture: str, name: str, label: str, a: object, f: object) -> bool:
        if not (
            fnmatchcase(capture, self.capture)
            and any(fnmatchcase(name, p) for p in as_list(self.field))
            and fnmatchcase(label, self.session)
        ):
            return False
        return not self.when or WHEN_CHECKS[self.when](a, f)


ZERO_MAC = "00:00:00:00:00:00"


def _subset(a: object, f: object) -> bool:
    return isinstance(a, frozenset) and isinstance(f, frozenset) and f <= a


def _greater(a: object, f: object) -> bool:
    return isinstance(a, int) and isinstance(f, int) and f > a


def _smaller(a: object, f: object) -> bool:
    return isinstance(a, int) and isinstance(f, int) and f < a


def _cut(a: object, f: object) -> bool:
    """fpc has Arkime's values, the long ones cut at fpc's length limit."""
    if not (isinstance(a, frozenset) and isinstance(f, frozenset)) or len(a) != len(f):
        return False
    return all(
        v in a or (len(v) == MAX_VALUE_CHARS and any(str(x).startswith(v) for x in a))
        for v in map(str, f)
    )


def _arkime_prefix(a: object, f: object) -> bool:
    """Arkime's list is a shorter start of fpc's (Arkime stopped keeping them)."""
    if not (isinstance(a, tuple) and isinstance(f, tuple)):
        return False
    return len(a) < len(f) and f[: len(a)] == a


WHEN_CHECKS: dict[str, Callable[[object, object], bool]] = {
    "arkime_prefix": _arkime_prefix,  # Arkime's list cut short
    "fpc_cut": _cut,  # fpc's strings are cut versions of Arkime's
    "fpc_subset": _subset,  # fpc's values all among Arkime's
    "fpc_superset": lambda a, f: _subset(f, a),  # Arkime's values all among fpc's
    "fpc_some_subset": lambda a, f: _subset(a, f) and not is_empty(f),
    "fpc_greater": _greater,  # fpc's count above Arkime's
    "fpc_smaller": _smaller,  # fpc's count below Arkime's
    "arkime_empty": lambda a, f: is_empty(a),  # Arkime has no value
    "fpc_without_zero_mac": lambda a, f: is_empty(f) and a == {ZERO_MAC},
}


def load_explanations(path: Path = EXPLAINED_PATH) -> list[Explanation]:
    """Entries of the explained-differences file; a bad entry is an error."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(
            f"cannot read the explained differences {path} ({exc}); "
            "pass --explained FILE"
        ) from exc
    out = []
    for i, entry in enumerate(data.get("explained", [])):
        try:
            if isinstance(entry.get("field"), list):
                entry = {**entry, "field": tuple(entry["field"])}
            out.append(Explanation(**entry))
        except TypeError as exc:
            raise ValueError(f"{path}: [[explained]] entry {i + 1}: {exc}") from exc
    return out


def find_reason(
    explained: list[Explanation], capture: str, name: str, label: str, a: object,
    f: object,
) -> str | None:  # fmt: skip
    for e in explained:
        if e.covers(capture, name, label, a, f):
            return e.reason
    return None


# --- comparing one capture -------------------------------------------------


@dataclass
class Outcome:
    """One compared value: a row of the report for one session."""

    field: str
    group: str
    session: str
    status: str  # "agree", "explained" or "differ"
    arkime: object = None
    fpc: object = None
    reason: str = ""


def is_empty(value: object) -> bool:
    return value is None or value == frozenset() or value == ()


def compare_field(
    spec: FieldSpec, arkime: Record, ours: Record
) -> tuple[Any, ...] | None:
    """(Arkime value, fpc value), or None when the row does not apply."""
    if spec.applies is not None and not spec.applies(arkime, ours):
        return None
    a, f = spec.arkime(arkime), spec.ours(ours)
    if is_empty(a) and is_empty(f):
        return None
    return a, f


def compare_pair(
    capture: str, a: Side, f: Side, specs: list[FieldSpec], explained: list[Any]
) -> list[Outcome]:
    """Outcomes of every applicable row for one matched session."""
    record, swapped = orient(f.doc, a)
    values: list[tuple[str, str, object, object]] = [
        ("orientation", L3L4, a.label, f.label if swapped else a.label)
    ]
    for spec in specs:
        pair = compare_field(spec, a.doc, record)
        if pair is not None:
            values.append((spec.name, spec.group, *pair))
    return [judge(capture, a.label, *v, explained) for v in values]


def judge(
    capture: str, label: str, name: str, group: str, a: object, f: object,
    explained: list[Explanation],
) -> Outcome:  # fmt: skip
    if a == f:
        return Outcome(name, group, label, "agree")
    reason = find_reason(explained, capture, name, label, a, f)
    status = "differ" if reason is None else "explained"
    return Outcome(name, group, label, status, a, f, reason or "")


def missing_outcomes(
    capture: str, matching: Matching, explained: list[Explanation]
) -> list[Outcome]:
    """One outcome per session that only one engine made."""
    out = []
    for side, name, who in (
        (matching.arkime_only, "sessions.arkime", "arkime"),
        (matching.fpc_only, "sessions.fpc", "fpc"),
    ):
        for s in side:
            label = f"{s.label} @{s.first_ms}"
            reason = find_reason(explained, capture, "session", s.label, None, None)
            status = "differ" if reason is None else "explained"
            present = {who: "present"}
            out.append(Outcome(name, SESSION, label, status, reason=reason or "",
                               **present))  # fmt: skip
    for a, _ in matching.pairs:
        for name in ("sessions.arkime", "sessions.fpc"):
            out.append(Outcome(name, SESSION, a.label, "agree"))
    return out


def ingest(pcap: Path, data_dir: str) -> list[Record]:
    """SPI records fpc makes from one capture, in-process, in a fresh data dir."""
    from fpc.config import load_config
    from fpc.pipeline import Pipeline
    from fpc.reader import open_capture
    from fpc.store import open_store

    cfg = load_config(None, {"node": "conformance", "data_dir": data_dir})
    store = open_store(cfg.data_dir)
    records: list[Record] = []
    pipeline = Pipeline(cfg, store, records.append)
    try:
        with open_capture(str(pcap)) as capture:
            for batch in capture.batches():
                pipeline.process(batch)
    except CaptureError as exc:  # damaged file: keep what came before the damage
        logger.warning("capture damaged path=%s error=%s", pcap, exc)
    pipeline.finish()
    store.close()
    return records


def load_expected(test_path: Path) -> list[Record]:
    with open(test_path, encoding="utf-8") as fh:
        return join_parts([s["body"] for s in json.load(fh).get("sessions3", [])])


# Counters of an Arkime document that add up over the parts of one session.
PART_SUMS = frozenset({
    "source.packets", "source.bytes", "destination.packets", "destination.bytes",
    "client.bytes", "server.bytes", "totDataBytes", "network.packets",
    "network.bytes",
})  # fmt: skip
PART_LISTS = frozenset({"packetLen", "packetPos"})  # one entry per packet


def join_parts(bodies: list[Record]) -> list[Record]:
    """Arkime writes a long TCP session as several documents with the same
    key and first packet (a save while it is open); join them into one, as
    fpc's record of the same packets is one."""
    joined: dict[tuple[Any, ...], Record] = {}
    for body in bodies:
        side = arkime_side(body)
        key = (*side.key, side.first_ms)
        joined[key] = _join(joined[key], body, "") if key in joined else body
    return list(joined.values())


def _join(a: Record, b: Record, prefix: str) -> Record:
    out = dict(a)
    for name, value in b.items():
        path = prefix + name
        old = out.get(name)
        if name not in out:
            out[name] = value
        elif isinstance(old, dict) and isinstance(value, dict):
            out[name] = _join(old, value, path + ".")
        elif path in PART_LISTS and isinstance(old, list):
            out[name] = old + list(value)
        elif isinstance(old, list) and isinstance(value, list):
            out[name] = old + [v for v in value if v not in old]
        elif isinstance(old, int) and isinstance(value, int):
            if path in PART_SUMS or path.startswith("tcpflags."):
                out[name] = old + value
            elif path == "lastPacket":
                out[name] = max(old, value)
    return out


def check_capture(
    name: str, pcap: Path, specs: list[FieldSpec], explained: list[Explanation]
) -> tuple[Matching, list[Outcome]]:
    """Ingest one capture and compare its records with Arkime's sessions."""
    with tempfile.TemporaryDirectory(prefix="fpc-conformance-") as data_dir:
        records = ingest(pcap, data_dir)
    arkime = [arkime_side(b) for b in load_expected(pcap.with_suffix(".test"))]
    matching = match_sessions(arkime, [fpc_side(r) for r in records])
    outcomes = missing_outcomes(name, matching, explained)
    for a, f in matching.pairs:
        outcomes += compare_pair(name, a, f, specs, explained)
    return matching, outcomes


# --- the report ------------------------------------------------------------


def jsonable(value: object) -> object:
    if isinstance(value, frozenset | set):
        return sorted(value, key=str)
    if isinstance(value, tuple):
        return list(value)
    return value


def tally(outcomes: Iterable[Outcome]) -> dict[str, Record]:
    """Per row: group, compared, agreed, explained, differ and % agreed."""
    rows: dict[str, Record] = {}
    for o in outcomes:
        row = rows.setdefault(
            o.field,
            {"group": o.group, "compared": 0, "agree": 0, "explained": 0, "differ": 0},
        )
        row["compared"] += 1
        row[o.status] += 1
    for row in rows.values():
        row["agree_pct"] = round(100.0 * row["agree"] / row["compared"], 2)
        ok = row["agree"] + row["explained"]
        row["agree_or_explained_pct"] = round(100.0 * ok / row["compared"], 2)
    return rows


def group_pct(rows: dict[str, Record], group: str, *statuses: str) -> float | None:
    """% of the values compared in one group's rows that have one of `statuses`."""
    mine = [r for r in rows.values() if r["group"] == group]
    compared = sum(r["compared"] for r in mine)
    hits = sum(r[s] for r in mine for s in statuses)
    return None if compared == 0 else round(100.0 * hits / compared, 2)


def capture_report(matching: Matching, outcomes: list[Outcome]) -> Record:
    return {
        "arkime_sessions": len(matching.pairs) + len(matching.arkime_only),
        "fpc_records": len(matching.pairs) + len(matching.fpc_only),
        "matched": len(matching.pairs),
        "differences": [
            {
                "field": o.field,
                "session": o.session,
                "status": o.status,
                "arkime": jsonable(o.arkime),
                "fpc": jsonable(o.fpc),
                **({"reason": o.reason} if o.reason else {}),
            }
            for o in outcomes
            if o.status != "agree"
        ],
    }


def unsupported_protocols(bodies: Iterable[Record]) -> dict[str, int]:
    """Arkime protocol names fpc cannot produce, with their session counts."""
    known = fpc_protocol_names()
    counts: dict[str, int] = {}
    for body in bodies:
        for name in arkime_protocol_names(body) - known:
            counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def run(
    corpus: Path, only: list[str] | None = None, explained: Path = EXPLAINED_PATH
) -> Record:
    """The whole conformance report for the `arkime/` pairs of a corpus."""
    folder = corpus / "arkime"
    pcaps = sorted(p for p in folder.glob("*.pcap") if p.with_suffix(".test").exists())
    if only:
        pcaps = [p for p in pcaps if p.stem in only]
    if not pcaps:
        raise ValueError(
            f"no NAME.pcap + NAME.test pairs in {folder}; "
            "pass --corpus DIR or set FPC_CORPUS"
        )
    specs, reasons = active_specs(), load_explanations(explained)
    captures, every = {}, []
    # Each capture has its own pipeline and data dir; threads overlap the file I/O.
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        results = pool.map(lambda p: check_capture(p.stem, p, specs, reasons), pcaps)
        for pcap, (matching, outcomes) in zip(pcaps, results, strict=True):
            captures[pcap.stem] = capture_report(matching, outcomes)
            every += outcomes
    bodies = (b for p in pcaps for b in load_expected(p.with_suffix(".test")))
    order = ["sessions.arkime", "sessions.fpc", "orientation"] + [s.name for s in specs]
    rows = tally(sorted(every, key=lambda o: order.index(o.field)))
    return {
        "corpus": str(corpus),
        "summary": {g: group_pct(rows, g, "agree") for g in (SESSION, L3L4, APP)},
        "summary_with_explained": {
            g: group_pct(rows, g, "agree", "explained") for g in (SESSION, L3L4, APP)
        },
        "fields": rows,
        "unsupported_protocols": unsupported_protocols(bodies),
        "captures": captures,
    }


def format_table(report: Record) -> str:
    """The summary table: one line per row, then the group totals."""
    head = f"{'field':<26} {'group':<8} {'compared':>8} {'agreed':>7} {'%':>7}"
    lines = [head + f" {'explained':>9} {'differ':>6} {'% +expl':>7}", "-" * 85]
    for name, r in report["fields"].items():
        lines.append(
            f"{name:<26} {r['group']:<8} {r['compared']:>8} {r['agree']:>7} "
            f"{r['agree_pct']:>7.2f} {r['explained']:>9} {r['differ']:>6} "
            f"{r['agree_or_explained_pct']:>7.2f}"
        )
    lines.append("-" * 85)
    for group, pct in report["summary"].items():
        both = report["summary_with_explained"][group] or 0
        lines.append(
            f"{'all ' + group:<26} {'':<8} {'':>8} {'':>7} {pct or 0:>7.2f} "
            f"{'':>9} {'':>6} {both:>7.2f}"
        )
    return "\n".join(lines)


def default_corpus() -> Path:
    env = os.environ.get("FPC_CORPUS")
    return Path(env) if env else Path(__file__).parents[2] / "shared" / "corpus"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fpc.conformance",
        description="Compare fpc's SPI records with Arkime's expected sessions.",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        default=default_corpus(),
        help="folder holding arkime/NAME.pcap + NAME.test",
    )
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument(
        "--explained",
        type=Path,
        default=EXPLAINED_PATH,
        help="TOML list of deliberate differences (default: %(default)s)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="captures to run (names without .pcap)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.ERROR)
    try:
        report = run(args.corpus, args.only, args.explained)
    except ValueError as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=jsonable) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
