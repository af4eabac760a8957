"""Stage 3 of the pipeline: the session table.

In: decoded batches (`fpc.decode.DECODED` rows) with the packet positions the
PCAP writer gave each packet. Out: finished `Session` objects (ended by idle
timeout, TCP close, segment limits, eviction or shutdown) that `fpc.spi` turns
into SPI records. Runs on the processing thread.

The table works per session per batch: packets are grouped by session key with
numpy, every counter is summed per group in one vectorized pass, and Python
touches each group once. Only fragments and packets for the app-layer parsers
are looked at one by one.
"""

from __future__ import annotations

import logging
from array import array
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from fpc import decode as dc
from fpc.appl import new_app_state
from fpc.packets import PacketBatch

logger = logging.getLogger(__name__)

NS = 1_000_000_000
PROTO_TCP, PROTO_UDP = 6, 17


@dataclass(frozen=True)
class SessionLimits:
    """Timeouts and bounds of the session table (all times in seconds)."""

    tcp_timeout_s: float = 480.0
    udp_timeout_s: float = 60.0
    other_timeout_s: float = 60.0
    tcp_close_s: float = 5.0  # linger after FIN from both sides or RST
    segment_age_s: float = 600.0  # emit an intermediate record past this age
    segment_packets: int = 10_000  # ... or past this many packets
    max_sessions: int = 1_000_000  # oldest idle sessions are evicted beyond it
    app_bytes: int = 65_536  # payload bytes per direction offered to parsers


class Session:
    """One session, or the current segment of a long one.

    Counters are kept in key orientation: index 0 = packets from the lower
    endpoint of the key, 1 = from the higher; `client` says which is the
    client (the initiator).
    """

    __slots__ = (
        "key", "hash", "proto", "ip_version", "vlan", "client", "segment",
        "first_ts", "last_ts", "packets", "bytes", "payload", "tcp", "macs",
        "ttls", "fin", "rst", "tunnel", "icmp", "file", "pos", "plen",
        "app", "app_bytes", "end_reason", "session_ts", "frag_ids",
    )  # fmt: skip

    def __init__(self, key: bytes, row: np.void, ts: int, client: int) -> None:
        self.key = key
        self.hash = int(row["hash"])
        self.proto = int(row["proto"])
        self.ip_version = int(row["ip_version"])
        self.vlan = (int(row["vlan"][0]), int(row["vlan"][1]), int(row["vlan_count"]))
        self.client = client
        self.segment = 0
        self.session_ts = ts
        self.app = None
        self.frag_ids: list[tuple] = []
        self._reset(ts)

    def _reset(self, ts: int) -> None:
        self.first_ts = ts
        self.last_ts = ts
        self.packets = [0, 0]
        self.bytes = [0, 0]
        self.payload = [0, 0]
        self.tcp = [0] * 7  # syn, syn_ack, ack, psh, fin, rst, urg
        self.macs: tuple[set, set] = (set(), set())
        self.ttls: tuple[set, set] = (set(), set())
        self.fin = [False, False]
        self.rst = False
        self.tunnel = 0
        self.icmp: set[tuple[int, int]] = set()
        self.file = array("q")
        self.pos = array("q")
        self.plen = array("q")
        self.app_bytes = [0, 0]
        self.end_reason = ""

    @property
    def closing(self) -> bool:
        return self.rst or (self.fin[0] and self.fin[1])

    def next_segment(self, ts: int) -> None:
        """Start the next segment of a long session with fresh counters."""
        self.segment += 1
        self._reset(ts)


def _timeouts_ns(proto: np.ndarray, limits: SessionLimits) -> np.ndarray:
    out = np.full(len(proto), int(limits.other_timeout_s * NS), dtype=np.int64)
    out[proto == PROTO_TCP] = int(limits.tcp_timeout_s * NS)
    out[proto == PROTO_UDP] = int(limits.udp_timeout_s * NS)
    return out


@dataclass
class _Groups:
    """A batch's session packets sorted by key; `starts` cut it into runs."""

    order: np.ndarray  # packet index in the batch, sorted by (key, capture order)
    keys: list[bytes]  # key of each run
    starts: np.ndarray  # first sorted index of each run
    new_group: np.ndarray  # bool per run: first run of its key in the batch


class SessionTable:
    """Active sessions, keyed by the normalized key of `fpc.decode`."""

    def __init__(self, limits: SessionLimits | None = None, app_layer: bool = True):
        self.limits = limits or SessionLimits()
        self.app_layer = app_layer
        # One LRU per timeout class, so the idle sessions sit at the front.
        self._lru: dict[int, OrderedDict[bytes, Session]] = {
            PROTO_TCP: OrderedDict(),
            PROTO_UDP: OrderedDict(),
            0: OrderedDict(),
        }
        self._frags: OrderedDict[tuple, tuple[bytes, int]] = OrderedDict()
        self.done: list[Session] = []
        self.now = 0
        self.counters = {
            "sessions": 0,
            "segments": 0,
            "evicted": 0,
            "session_packets": 0,
            "non_ip": 0,
            "malformed": 0,
            "unsupported_link": 0,
            "orphan_fragments": 0,
        }

    def __len__(self) -> int:
        return sum(len(t) for t in self._lru.values())

    def _table(self, proto: int) -> OrderedDict[bytes, Session]:
        return self._lru.get(proto, self._lru[0])

    # -- per batch ---------------------------------------------------------

    def add_batch(
        self, batch: PacketBatch, dec: np.ndarray, files: np.ndarray, pos: np.ndarray
    ) -> None:
        """Account every packet of `batch`; `files`/`pos` are its packet positions."""
        self._count_statuses(dec)
        sel = np.flatnonzero(dec["status"] == dc.STATUS_IP)
        if len(sel) == 0:
            return
        keys = self._session_keys(dec, sel)
        groups = self._group(batch, dec, sel, keys)
        self._apply(batch, dec, files, pos, groups)
        self.now = max(self.now, int(batch.ts_ns.max()))
        self.expire(self.now)

    def _count_statuses(self, dec: np.ndarray) -> None:
        counts = np.bincount(dec["status"], minlength=4)
        self.counters["non_ip"] += int(counts[dc.STATUS_NON_IP])
        self.counters["malformed"] += int(counts[dc.STATUS_MALFORMED])
        self.counters["unsupported_link"] += int(counts[dc.STATUS_UNSUPPORTED_LINK])
        self.counters["session_packets"] += int(counts[dc.STATUS_IP])

    def _session_keys(self, dec: np.ndarray, sel: np.ndarray) -> np.ndarray:
        """Keys of the selected packets; later fragments take their first's key."""
        keys = dec["key"][sel].copy()
        frag = dec["frag"][sel]
        for j in np.flatnonzero(frag != 0).tolist():
            row = dec[sel[j]]
            fid = (row["src"], row["dst"], int(row["proto"]), int(row["ip_id"]))
            if int(row["frag"]) & dc.FRAG_NONFIRST:
                hit = self._frags.get(fid)
                if hit is None:
                    self.counters["orphan_fragments"] += 1
                else:
                    keys[j] = hit[0]
            else:
                self._frags[fid] = (bytes(keys[j]), int(row["reverse"]))
                if len(self._frags) > 65_536:
                    self._frags.popitem(last=False)
        return keys

    def _group(
        self, batch: PacketBatch, dec: np.ndarray, sel: np.ndarray, keys: np.ndarray
    ) -> _Groups:
        uniq, inverse = np.unique(keys, return_inverse=True)
        order_in_sel = np.argsort(inverse, kind="stable")
        order = sel[order_in_sel]
        gid = inverse[order_in_sel]
        n = len(order)
        new_group = np.ones(n, dtype=bool)
        new_group[1:] = gid[1:] != gid[:-1]
        split = new_group | self._split_points(batch, dec, order, new_group)
        starts = np.flatnonzero(split)
        run_keys = [bytes(k) for k in uniq[gid[starts]].tolist()]
        return _Groups(order, run_keys, starts, new_group[starts])

    def _split_points(
        self,
        batch: PacketBatch,
        dec: np.ndarray,
        order: np.ndarray,
        new_group: np.ndarray,
    ) -> np.ndarray:
        """Where a key's packets start a new session inside one batch.

        A gap longer than the protocol's idle timeout, or a bare SYN after a
        FIN or RST of the same key (port reuse), begins a new session.
        """
        ts = batch.ts_ns[order]
        proto = dec["proto"][order]
        flags = dec["tcp_flags"][order]
        gap = np.zeros(len(order), dtype=bool)
        gap[1:] = (ts[1:] - ts[:-1]) > _timeouts_ns(proto[1:], self.limits)
        is_tcp = proto == PROTO_TCP
        closing = is_tcp & ((flags & (dc.TCP_FIN | dc.TCP_RST)) != 0)
        bare_syn = is_tcp & ((flags & (dc.TCP_SYN | dc.TCP_ACK)) == dc.TCP_SYN)
        seen = np.cumsum(closing)
        group_base = np.maximum.accumulate(np.where(new_group, seen - closing, 0))
        reuse = bare_syn & ((seen - closing - group_base) > 0)
        return (gap | reuse) & ~new_group

    def _apply(
        self,
        batch: PacketBatch,
        dec: np.ndarray,
        files: np.ndarray,
        pos: np.ndarray,
        g: _Groups,
    ) -> None:
        agg = _aggregate(batch, dec, files, pos, g)
        for r, key in enumerate(g.keys):
            sess = self._session_for(key, dec, agg, r, bool(g.new_group[r]))
            _add_run(sess, agg, r)
            if self.app_layer and sess.app is not None and sess.app.wants_more:
                self._feed_app(sess, batch, dec, agg.run_order(r))
            self._check_segment(sess)

    def _session_for(
        self, key: bytes, dec: np.ndarray, agg: _Aggregate, r: int, first_run: bool
    ) -> Session:
        proto = int(agg.proto[r])
        table = self._table(proto)
        sess = table.get(key)
        first_ts = int(agg.first_ts[r])
        if sess is not None and not first_run:
            self._end(sess, "idle" if not agg.reuse[r] else "tcp_close")
            sess = None
        elif sess is not None:
            idle = first_ts - sess.last_ts > self._timeout_ns(proto)
            if idle or (agg.reuse[r] and sess.closing):
                self._end(sess, "tcp_close" if sess.closing else "idle")
                sess = None
        if sess is None:
            row = dec[agg.first_idx[r]]
            sess = Session(key, row, first_ts, _client_side(row))
            if self.app_layer:
                sess.app = _new_app(sess, row)
            table[key] = sess
            self.counters["sessions"] += 1
            self._bound_table()
        else:
            table.move_to_end(key)
        return sess

    def _timeout_ns(self, proto: int) -> int:
        lim = self.limits
        t = {PROTO_TCP: lim.tcp_timeout_s, PROTO_UDP: lim.udp_timeout_s}
        return int(t.get(proto, lim.other_timeout_s) * NS)

    def _feed_app(
        self, sess: Session, batch: PacketBatch, dec: np.ndarray, idx: np.ndarray
    ) -> None:
        app = sess.app
        assert app is not None
        lim = self.limits.app_bytes
        for i in idx.tolist():
            row = dec[i]
            direction = int(row["reverse"]) ^ sess.client
            n = int(row["payload_len"])
            flags = int(row["tcp_flags"])
            if n == 0 and not flags & (dc.TCP_SYN | dc.TCP_FIN):
                continue
            if sess.app_bytes[direction] >= lim:
                continue
            sess.app_bytes[direction] += n
            start = int(batch.offset[i]) + int(row["payload_offset"])
            seq = int(row["seq"]) if sess.proto == PROTO_TCP else None
            app.feed(direction, batch.data[start : start + n], seq, flags)
            if not app.wants_more:
                break

    def _check_segment(self, sess: Session) -> None:
        lim = self.limits
        too_old = sess.last_ts - sess.first_ts > lim.segment_age_s * NS
        if too_old or len(sess.pos) >= lim.segment_packets:
            self._emit(sess, "segment")
            sess.next_segment(sess.last_ts)
            self.counters["segments"] += 1

    # -- ending sessions ---------------------------------------------------

    def expire(self, now: int) -> None:
        """End the sessions idle past their timeout, or closed, as of `now`."""
        close_ns = int(self.limits.tcp_close_s * NS)
        for proto, table in self._lru.items():
            timeout = self._timeout_ns(proto if proto else -1)
            ended = []
            for sess in table.values():
                if sess.closing and now - sess.last_ts > close_ns:
                    ended.append((sess, "tcp_close"))
                elif now - sess.last_ts > timeout:
                    ended.append((sess, "idle"))
                elif not sess.closing:
                    break  # the rest of this LRU was active more recently
            for sess, reason in ended:
                self._end(sess, reason)

    def flush_all(self, reason: str = "shutdown") -> None:
        """End every active session (end of input, SIGTERM)."""
        for table in self._lru.values():
            for sess in list(table.values()):
                self._end(sess, reason)

    def _bound_table(self) -> None:
        while len(self) > self.limits.max_sessions:
            oldest = min(
                (t for t in self._lru.values() if t),
                key=lambda t: next(iter(t.values())).last_ts,
            )
            self._end(next(iter(oldest.values())), "evicted")
            self.counters["evicted"] += 1

    def _end(self, sess: Session, reason: str) -> None:
        self._table(sess.proto).pop(sess.key, None)
        if len(sess.pos):  # a segment just emitted leaves an empty one behind
            self._emit(sess, reason)

    def _emit(self, sess: Session, reason: str) -> None:
        sess.end_reason = reason
        self.done.append(_snapshot(sess))

    def take_done(self) -> list[Session]:
        """Sessions ended since the last call, oldest first."""
        done, self.done = self.done, []
        return done


def _snapshot(sess: Session) -> Session:
    """A copy of `sess` that later segments will not change."""
    copy = Session.__new__(Session)
    for name in Session.__slots__:
        setattr(copy, name, getattr(sess, name))
    return copy


def _client_side(row: np.void) -> int:
    """Which key endpoint (0 = lower, 1 = higher) is the client.

    The sender of a bare SYN is the client, the sender of a SYN-ACK the
    server; otherwise whoever sent the first packet.
    """
    sender = int(row["reverse"])
    flags = int(row["tcp_flags"])
    if int(row["proto"]) == PROTO_TCP and flags & dc.TCP_SYN and flags & dc.TCP_ACK:
        return sender ^ 1
    return sender


def _new_app(sess: Session, row: np.void):  # type: ignore[no-untyped-def]
    transport = {6: "tcp", 17: "udp", 132: "sctp"}.get(sess.proto)
    if transport is None:
        return None
    sport, dport = int(row["sport"]), int(row["dport"])
    if int(row["reverse"]) != sess.client:
        sport, dport = dport, sport
    return new_app_state(transport, sport, dport)


class _Aggregate:
    """Per-run sums of one batch, computed with numpy reduceat."""

    def __init__(self) -> None:
        self.order = np.empty(0, dtype=np.int64)
        self.bounds: list[int] = []

    def run_order(self, r: int) -> np.ndarray:
        return self.order[self.bounds[r] : self.bounds[r + 1]]


def _aggregate(
    batch: PacketBatch, dec: np.ndarray, files: np.ndarray, pos: np.ndarray, g: _Groups
) -> _Aggregate:
    o, starts = g.order, g.starts
    d = dec[o]
    rev = d["reverse"].astype(np.int64)
    fwd = 1 - rev
    wire = batch.wirelen[o].astype(np.int64)
    pay = d["payload_len"].astype(np.int64)
    flags = d["tcp_flags"]
    is_tcp = d["proto"] == PROTO_TCP
    idx = np.arange(len(o))
    big = np.int64(len(o))

    a = _Aggregate()
    a.order = o
    a.bounds = starts.tolist() + [len(o)]
    red = np.add.reduceat
    a.packets = np.stack([red(fwd, starts), red(rev, starts)], axis=1).tolist()
    a.bytes = np.stack([red(wire * fwd, starts), red(wire * rev, starts)], 1).tolist()
    a.payload = np.stack([red(pay * fwd, starts), red(pay * rev, starts)], 1).tolist()
    masks = _flag_masks(flags)
    a.tcp = np.stack([red((is_tcp & m).astype(np.int64), starts) for m in masks], 1)
    a.tcp = a.tcp.tolist()
    fin = (masks[4] & is_tcp).astype(np.int64)
    a.fin = np.stack([red(fin * fwd, starts), red(fin * rev, starts)], 1).tolist()
    ts = batch.ts_ns[o]
    a.first_ts = np.minimum.reduceat(ts, starts).tolist()
    a.last_ts = np.maximum.reduceat(ts, starts).tolist()
    a.proto = d["proto"][starts].tolist()
    a.first_idx = o[starts].tolist()
    a.dir_first = [
        np.minimum.reduceat(np.where(rev == s, idx, big), starts).tolist()
        for s in (0, 1)
    ]
    a.d = d
    a.tunnel = np.bitwise_or.reduceat(d["tunnel"], starts).tolist()
    a.files = files[o]
    a.pos = pos[o]
    a.caplen = batch.caplen[o].astype(np.int64)
    syn_only = is_tcp & ((flags & (dc.TCP_SYN | dc.TCP_ACK)) == dc.TCP_SYN)
    a.reuse = syn_only[starts].tolist()
    return a


def _flag_masks(flags: np.ndarray) -> list[np.ndarray]:
    """syn, syn_ack, ack (no other counted flag), psh, fin, rst, urg."""
    syn = (flags & dc.TCP_SYN) != 0
    ack = (flags & dc.TCP_ACK) != 0
    others = dc.TCP_SYN | dc.TCP_FIN | dc.TCP_RST | dc.TCP_PSH | dc.TCP_URG
    return [
        syn & ~ack,
        syn & ack,
        ack & ((flags & others) == 0),
        (flags & dc.TCP_PSH) != 0,
        (flags & dc.TCP_FIN) != 0,
        (flags & dc.TCP_RST) != 0,
        (flags & dc.TCP_URG) != 0,
    ]


def _add_run(sess: Session, a: _Aggregate, r: int) -> None:
    for s in (0, 1):
        sess.packets[s] += a.packets[r][s]
        sess.bytes[s] += a.bytes[r][s]
        sess.payload[s] += a.payload[r][s]
        if a.fin[r][s]:
            sess.fin[s] = True
        first = a.dir_first[s][r]
        if first < len(a.order):
            row = a.d[first]
            sess.macs[s].add(bytes(row["src_mac"]).ljust(6, b"\0"))
            sess.ttls[s].add(int(row["ttl"]))
    for k, v in enumerate(a.tcp[r]):
        sess.tcp[k] += v
    if a.tcp[r][5]:
        sess.rst = True
    sess.tunnel |= a.tunnel[r]
    sess.first_ts = min(sess.first_ts, a.first_ts[r])
    sess.last_ts = max(sess.last_ts, a.last_ts[r])
    lo, hi = a.bounds[r], a.bounds[r + 1]
    sess.file.frombytes(a.files[lo:hi].astype(np.int64).tobytes())
    sess.pos.frombytes(a.pos[lo:hi].astype(np.int64).tobytes())
    sess.plen.frombytes(a.caplen[lo:hi].astype(np.int64).tobytes())
    if sess.proto in (1, 58):
        d = a.d[lo:hi]
        types, codes = d["icmp_type"].tolist(), d["icmp_code"].tolist()
        sess.icmp.update(zip(types, codes, strict=True))
