"""Real app-layer messages per registered protocol, taken from the corpus.

For each capture of the corpus' arkime/ folder, packets are grouped into
sessions by 5-tuple with dpkt (the first packet's sender is the client) and
fed to `new_app_state` as the session table would feed them, while every
registered parser class records the (direction, bytes) chunks its `feed`
gets: the bytes a parser really sees, after TCP reordering and after a SOCKS
or STARTTLS hand-off. Out: `corpus_seeds()`, per (protocol, transport), the
chunks of up to SESSIONS_PER_PROTOCOL sessions the parser read without an
error, for tests that feed parsers broken versions of real messages.
"""

from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from collections.abc import Iterator

import dpkt

from conftest import CORPUS
from fpc.appl import new_app_state
from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, registered_specs

SESSIONS_PER_PROTOCOL = 3
MAX_SEED_CHUNKS = 64  # per parser: enough for its first messages

Chunks = list[tuple[int, bytes]]
Packet = tuple[int, bytes, int | None, int]
# id(parser) -> (protocol, read without a ParseError, chunks fed)
Fed = dict[int, tuple[str, bool, Chunks]]


@functools.cache
def corpus_seeds() -> dict[tuple[str, str], list[Chunks]]:
    seeds: dict[tuple[str, str], list[Chunks]] = defaultdict(list)
    with _recording() as fed:
        for path in sorted((CORPUS / "arkime").glob("*.pcap")):
            for key, (client, packets) in _sessions(str(path)).items():
                transport = "tcp" if key[2] else "udp"
                server = key[1] if key[0] == client else key[0]
                state = new_app_state(transport, client[1], server[1])
                for packet in packets:
                    state.feed(*packet)
                for name, clean, chunks in fed.values():
                    kept = seeds[(name, transport)]
                    if clean and len(kept) < SESSIONS_PER_PROTOCOL:
                        kept.append(chunks)
                fed.clear()
    return dict(seeds)


@contextlib.contextmanager
def _recording() -> Iterator[Fed]:
    """Wraps `feed` of every registered parser class while inside."""
    fed: Fed = {}
    keep_alive: list[Parser] = []  # so no id() is reused while recording
    originals = {}
    for spec in registered_specs():
        cls = spec.create
        if isinstance(cls, type) and cls not in originals:
            originals[cls] = cls.feed
            cls.feed = _recorder(fed, keep_alive, spec.name, cls.feed)
    try:
        yield fed
    finally:
        for cls, original in originals.items():
            cls.feed = original


def _recorder(fed: Fed, keep_alive: list[Parser], name: str, original):  # noqa: ANN001, ANN202
    def feed(self: Parser, direction: int, data: bytes) -> None:
        _, clean, chunks = fed.get(id(self), (name, True, []))
        if len(chunks) < MAX_SEED_CHUNKS:
            chunks.append((direction, bytes(data)))
        fed[id(self)] = (name, clean, chunks)
        keep_alive.append(self)
        try:
            original(self, direction, data)
        except ParseError:
            fed[id(self)] = (name, False, chunks)
            raise

    return feed


def _l4(frame: bytes, linktype: int) -> tuple[dpkt.Packet, dpkt.Packet] | None:
    """(IP, TCP or UDP) of an Ethernet, loopback or raw IP frame."""
    try:
        if linktype == dpkt.pcap.DLT_EN10MB:
            ip = dpkt.ethernet.Ethernet(frame).data
        elif linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
            ip = dpkt.loopback.Loopback(frame).data
        elif linktype in (dpkt.pcap.DLT_RAW, 101, 228, 229):
            ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
        else:
            return None
    except (dpkt.UnpackError, IndexError):
        return None
    if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
        if isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP):
            return ip, ip.data
    return None


def _sessions(path: str) -> dict[tuple, tuple[tuple, list[Packet]]]:
    """5-tuple -> (client endpoint, its packets as (direction, payload, seq, flags))."""
    out: dict[tuple, tuple[tuple, list[Packet]]] = {}
    with open(path, "rb") as f:
        try:
            reader = dpkt.pcap.Reader(f)
            frames = list(reader)
        except (ValueError, dpkt.NeedData):
            return out
    for _ts, frame in frames:
        hit = _l4(frame, reader.datalink())
        if hit is None:
            continue
        ip, l4 = hit
        a, b = (ip.src, l4.sport), (ip.dst, l4.dport)
        key = (min(a, b), max(a, b), type(l4) is dpkt.tcp.TCP)
        client, packets = out.setdefault(key, (a, []))
        direction = 0 if a == client else 1
        if key[2]:
            packets.append((direction, bytes(l4.data), l4.seq, l4.flags))
        else:
            packets.append((direction, bytes(l4.data), None, 0))
    return out
