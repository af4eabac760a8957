"""Stage 3 of the pipeline: the session table.

In: decoded batches (`fpc.decode.DECODED` rows) with the packet positions the
PCAP writer gave each packet. Out: finished `Session` objects (ended by idle
timeout, TCP close, segment limits, eviction or shutdown) that `fpc.spi` turns
into SPI records. Runs on the processing thread.

Every packet is accounted in C (`fpc._fastpath.SessionTable`, csrc/session.c)
in one call per batch, with the GIL released. Python only rewrites the key of
non-first IP fragments (a loop over fragments), feeds the app-layer parsers
the packets the C table lists for them (payload of sessions whose parsers
still want data, within `app_bytes` per direction), and turns ended sessions
into `Session` objects. An app-layer state is made at a session's first
payload packet, so idle sessions hold no Python object; a UDP session whose
datagrams no classifier recognized keeps only a count (`fpc.parked`).
"""

from __future__ import annotations

import builtins
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fpc import _fastpath
from fpc import decode as dc
from fpc.appl import new_app_state
from fpc.appl.state import AppState
from fpc.packets import PacketBatch
from fpc.parked import ParkedProbes

logger = logging.getLogger(__name__)

NS = 1_000_000_000
PROTO_TCP, PROTO_UDP = 6, 17
APP_DONE_ALL = 3  # SessionTable.app_done: both client directions
TRANSPORTS = {6: "tcp", 17: "udp", 132: "sctp"}  # protocols with app-layer parsers
MAX_FRAGMENT_IDS = 65_536  # first fragments remembered for the later ones
# end_reason codes of the C table (FPC_END_* in csrc/session.h); 5 is a flush.
END_REASONS = {1: "idle", 2: "tcp_close", 3: "segment", 4: "evicted"}
END_SEGMENT = 3


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
    # Packet positions held by all active sessions (16 bytes each); past it the
    # longest-idle sessions are cut into segments.
    max_positions: int = 16_000_000
    # App-layer states held at once (a few KB each while parsing); sessions
    # that start past it are not parsed, and counted as `app_skipped`.
    max_app_states: int = 200_000


def _record_dtypes() -> tuple[np.dtype, np.dtype]:
    """numpy dtypes of what the C table's take() returns, from its own layout."""
    ended, ended_size, positions, position_size = _fastpath.SessionTable.layouts()

    def build(fields: Sequence[tuple[str, str, int]], size: int) -> np.dtype:
        names, formats, offsets = zip(*fields, strict=True)
        return np.dtype(
            {"names": names, "formats": formats, "offsets": offsets, "itemsize": size}
        )

    return build(ended, ended_size), build(positions, position_size)


ENDED, POSITION = _record_dtypes()


class FinishedApp:
    """What a session's parsers found, kept once they want no more data.

    Replaces the `AppState` (streams, parsers, buffers) of a session that is
    still active, so a long session with finished parsers holds only this.
    """

    __slots__ = ("_protocols", "_fields")

    def __init__(self, app: AppState) -> None:
        self._protocols = app.protocols()
        self._fields = app.fields()

    @property
    def empty(self) -> bool:
        return not self._protocols and not self._fields

    def protocols(self) -> list[str]:
        return list(self._protocols)

    def fields(self) -> dict[str, list[object]]:
        return dict(self._fields)  # the lists are shared by the session's records


class Session:
    """One ended session, or one segment of a long one.

    Counters are kept in key orientation: index 0 = packets from the lower
    endpoint of the key, 1 = from the higher; `client` says which is the
    client (the initiator). `file`, `pos` and `plen` are numpy arrays of the
    packet positions in capture order.
    """

    __slots__ = (
        "key", "hash", "proto", "ip_version", "vlan", "client", "segment",
        "first_ts", "last_ts", "packets", "bytes", "payload", "tcp", "macs",
        "ttls", "tunnel", "icmp", "file", "pos", "plen", "app", "end_reason",
        "session_ts", "first_pos",
    )  # fmt: skip

    key: builtins.bytes
    hash: int
    proto: int
    ip_version: int
    vlan: tuple[list[int], list[int]]  # outer VLAN ids, inner (QinQ) ids
    client: int
    segment: int
    first_ts: int
    last_ts: int
    session_ts: int
    first_pos: tuple[int, int]  # file number and position of the first packet
    packets: list[int]
    bytes: list[int]
    payload: list[int]
    tcp: list[int]  # syn, syn_ack, ack, psh, fin, rst, urg
    macs: tuple[set[builtins.bytes], set[builtins.bytes]]
    ttls: tuple[set[int], set[int]]
    tunnel: int
    icmp: list[tuple[int, int]]  # (type, code) pairs in the order first seen
    file: np.ndarray
    pos: np.ndarray
    plen: np.ndarray
    app: AppState | FinishedApp | None
    end_reason: str


class SessionTable:
    """Active sessions, keyed by the normalized key of `fpc.decode`."""

    def __init__(self, limits: SessionLimits | None = None, app_layer: bool = True):
        self.limits = lim = limits or SessionLimits()
        self.app_layer = app_layer
        self._table = _fastpath.SessionTable(
            tcp_timeout_ns=int(lim.tcp_timeout_s * NS),
            udp_timeout_ns=int(lim.udp_timeout_s * NS),
            other_timeout_ns=int(lim.other_timeout_s * NS),
            tcp_close_ns=int(lim.tcp_close_s * NS),
            segment_age_ns=int(lim.segment_age_s * NS),
            segment_packets=lim.segment_packets,
            max_sessions=lim.max_sessions,
            app_bytes=lim.app_bytes,
            max_positions=lim.max_positions,
            app_layer=app_layer,
            seed=int.from_bytes(os.urandom(8), "little"),
        )
        # session serial -> app-layer state, from its first payload packet on
        self._apps: dict[int, AppState | FinishedApp] = {}
        # datagrams tried by UDP sessions no classifier recognized yet
        self._parked = ParkedProbes()
        # serial -> first packet position, for sessions with more segments to come
        self._first_pos: dict[int, tuple[int, int]] = {}
        # (src, dst, proto, IP id) of a first fragment -> its key and direction
        self._frags: OrderedDict[tuple[bytes, bytes, int, int], tuple[bytes, int]] = (
            OrderedDict()
        )
        self.done: list[Session] = []
        self._counts = {
            "session_packets": 0,
            "non_ip": 0,
            "malformed": 0,
            "unsupported_link": 0,
            "orphan_fragments": 0,
            "app_skipped": 0,
            "app_errors": 0,  # parsers ended by malformed data (or a parser bug)
        }

    def __len__(self) -> int:
        return len(self._table)

    @property
    def counters(self) -> dict[str, int]:
        """Sessions started, segments, evictions, app-layer states held, and
        packets by decode status."""
        c = self._table.counters()
        return {
            "sessions": c["sessions"],
            "segments": c["segments"],
            "evicted": c["evicted"],
            "position_cuts": c["position_cuts"],
            "app_states": len(self._apps),
            **self._counts,
        }

    @property
    def memory_bytes(self) -> int:
        """Bytes the C table holds (slots, buckets, packet positions)."""
        return int(self._table.counters()["memory_bytes"])

    # -- per batch ---------------------------------------------------------

    def add_batch(
        self, batch: PacketBatch, dec: np.ndarray, files: np.ndarray, pos: np.ndarray
    ) -> None:
        """Account every packet of `batch`; `files`/`pos` are its packet positions."""
        self._count_statuses(dec)
        if dec["frag"].any():
            dec = self._join_fragments(dec)
        n = len(batch)
        index = np.empty(n, dtype=np.int64)
        serial = np.empty(n, dtype=np.uint64)
        direction = np.empty(n, dtype=np.uint8)
        listed = self._table.add(
            dec,
            np.ascontiguousarray(batch.ts_ns, dtype=np.int64),
            np.ascontiguousarray(batch.wirelen, dtype=np.uint32),
            np.ascontiguousarray(batch.caplen, dtype=np.uint32),
            np.ascontiguousarray(files, dtype=np.int64),
            np.ascontiguousarray(pos, dtype=np.int64),
            index,
            serial,
            direction,
        )
        if listed:
            self._feed_apps(batch, dec, index[:listed], serial[:listed],
                            direction[:listed])  # fmt: skip
        self._collect("")

    def _count_statuses(self, dec: np.ndarray) -> None:
        counts = np.bincount(dec["status"], minlength=5)
        self._counts["non_ip"] += int(counts[dc.STATUS_NON_IP])
        self._counts["malformed"] += int(counts[dc.STATUS_MALFORMED])
        self._counts["unsupported_link"] += int(counts[dc.STATUS_UNSUPPORTED_LINK])
        self._counts["session_packets"] += int(
            counts[dc.STATUS_IP] + counts[dc.STATUS_LINK]
        )

    def _join_fragments(self, dec: np.ndarray) -> np.ndarray:
        """`dec`, where later fragments take the key of their first fragment."""
        rows = np.flatnonzero((dec["frag"] != 0) & (dec["status"] == dc.STATUS_IP))
        joined: list[tuple[int, bytes, int]] = []
        for j in rows.tolist():
            row = dec[j]
            fid = (bytes(row["src"]), bytes(row["dst"]), int(row["proto"]),
                   int(row["ip_id"]))  # fmt: skip
            if int(row["frag"]) & dc.FRAG_NONFIRST:
                hit = self._frags.get(fid)
                if hit is None:
                    self._counts["orphan_fragments"] += 1
                else:
                    joined.append((j, *hit))
            else:
                self._frags[fid] = (bytes(row["key"]), int(row["reverse"]))
                if len(self._frags) > MAX_FRAGMENT_IDS:
                    self._frags.popitem(last=False)
        if not joined:
            return dec
        dec = dec.copy()  # the caller's rows stay as decoded
        for j, key, reverse in joined:
            dec["key"][j] = key
            dec["reverse"][j] = reverse
        return dec

    def _feed_apps(
        self,
        batch: PacketBatch,
        dec: np.ndarray,
        index: np.ndarray,
        serials: np.ndarray,
        dirs: np.ndarray,
    ) -> None:
        """Feed each listed packet's payload to its session's app-layer state.

        The packets are taken session by session (sessions in the order of
        their first packet here, each session's packets in capture order), so
        the TCP segments of one direction that continue one another form runs
        that the parsers can take as one chunk. Only when `max_app_states` are
        held does the order matter: of the sessions starting in one batch, the
        first to arrive get the states freed by those earlier in the batch.
        """
        order = _by_session(serials)
        index, serials, dirs = index[order], serials[order], dirs[order]
        rows = dec.take(index)  # on a structured array 15x faster than dec[index]
        starts_a = batch.offset[index] + rows["payload_offset"]
        starts, ends = starts_a.tolist(), (starts_a + rows["payload_len"]).tolist()
        protos = rows["proto"].tolist()
        seqs, flags = rows["seq"].tolist(), rows["tcp_flags"].tolist()
        serial_list, dir_list = serials.tolist(), dirs.tolist()
        bounds = _run_bounds(rows, serials, dirs).tolist()
        data, apps, finished = batch.data, self._apps, set()
        for a, z in itertools.pairwise(bounds):
            serial, direction, k = serial_list[a], dir_list[a], a
            while k < z and serial not in finished:
                app = apps.get(serial)
                if app is None:
                    app = self._new_app(serial, rows, k, direction)
                if app is None or isinstance(app, FinishedApp):
                    finished.add(serial)
                    break
                errors = app.errors
                if z - k > 1 and app.takes_joined(direction, seqs[k]):
                    run = b"".join([data[starts[j] : ends[j]] for j in range(k, z)])
                    app.feed(direction, run, seqs[k], flags[z - 1])
                    k = z
                else:
                    app.feed(direction, data[starts[k] : ends[k]],
                             seqs[k] if protos[k] == PROTO_TCP else None,
                             flags[k])  # fmt: skip
                    k += 1
                if app.errors != errors:
                    self._counts["app_errors"] += app.errors - errors
                if not self._keep_app(serial, app):
                    finished.add(serial)

    def _keep_app(self, serial: int, app: AppState) -> bool:
        """After a packet: whether `app` still wants packets. A parked UDP state
        leaves a count, one past `max_app_states` is dropped (it was let in to
        be parked), finished parsers leave their results."""
        if app.parked:
            self._parked.park(serial, app.tried)
            del self._apps[serial]
            return True
        if len(self._apps) > self.limits.max_app_states:
            del self._apps[serial]
            self._skip_app(serial)
            return False
        if not app.wants_more:
            self._finish_app(serial, app)
            return False
        declined = app.declined & ~app.declined_told
        if declined:  # the C table stops offering those directions' packets
            app.declined_told |= declined
            if self._table.app_done(serial, declined) == APP_DONE_ALL:
                self._finish_app(serial, app)
                return False
        return True

    def _finish_app(self, serial: int, app: AppState) -> None:
        """Keep only what the parsers of `serial` found, nothing if they found
        nothing; the C table offers the session no more packets."""
        result = FinishedApp(app)
        if result.empty:
            del self._apps[serial]
        else:
            self._apps[serial] = result
        self._table.app_done(serial)

    def _new_app(
        self, serial: int, rows: np.ndarray, k: int, direction: int
    ) -> AppState | None:
        """App-layer state of a session whose payload packet `rows[k]` is the
        first since it had none (or was parked); None for a TCP session when
        `max_app_states` are held already. A UDP one is let in, as it may
        end up parked, which costs no state.

        The C table kept the sequence numbers of the session's SYNs; the TCP
        streams get them first, as if they had seen the SYNs themselves.
        """
        proto = int(rows["proto"][k])
        if len(self._apps) >= self.limits.max_app_states and proto != PROTO_UDP:
            self._skip_app(serial)
            return None
        sport, dport = int(rows["sport"][k]), int(rows["dport"][k])
        if direction:  # sent by the server: the client's port is the destination
            sport, dport = dport, sport
        tried = self._parked.tried(serial)
        app = self._apps[serial] = new_app_state(
            TRANSPORTS[proto], sport, dport, tried, self.limits.app_bytes
        )
        for d, seq in enumerate(self._table.syn_seqs(serial)):
            if seq is not None:
                app.feed(d, b"", seq, dc.TCP_SYN)
        return app

    def _skip_app(self, serial: int) -> None:
        """No parsing for `serial`: `max_app_states` are held."""
        self._counts["app_skipped"] += 1
        self._table.app_done(serial)

    # -- ending sessions ---------------------------------------------------

    def expire(self, now_ns: int) -> None:
        """End the sessions idle past their timeout, or closed, as of `now_ns`."""
        self._table.expire(int(now_ns))
        self._collect("")

    def flush_all(self, reason: str = "shutdown") -> None:
        """End every active session (end of input, SIGTERM)."""
        self._table.flush()
        self._collect(reason)

    def take_done(self) -> list[Session]:
        """Sessions ended since the last call, oldest first."""
        done, self.done = self.done, []
        return done

    def _collect(self, flush_reason: str) -> None:
        """Turn what the C table ended into `Session` objects on `self.done`."""
        raw, raw_pos = self._table.take()
        if raw:
            ended = np.frombuffer(raw, dtype=ENDED)
            positions = np.frombuffer(raw_pos, dtype=POSITION)
            self.done.extend(
                _sessions(ended, positions, self._apps, self._first_pos, flush_reason)
            )


def _by_session(serials: np.ndarray) -> np.ndarray:
    """Order grouping the packets of each session, sessions by first packet."""
    _, first, inverse = np.unique(serials, return_index=True, return_inverse=True)
    return np.argsort(first[inverse], kind="stable")


_TCP_ENDS_RUN = dc.TCP_SYN | dc.TCP_FIN | dc.TCP_RST


def _run_bounds(rows: np.ndarray, serials: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Starts of the runs of `rows` (grouped by session) plus the end: a run
    is one packet, or TCP segments of one session and direction each starting
    at the sequence number where the one before ends, with no SYN, and FIN or
    RST only on the last."""
    n = len(rows)
    seq = rows["seq"].astype(np.int64)
    flags = rows["tcp_flags"]
    tcp = rows["proto"] == PROTO_TCP
    nxt = (seq + rows["payload_len"]) & 0xFFFFFFFF
    joins = (
        (serials[1:] == serials[:-1])
        & (dirs[1:] == dirs[:-1])
        & tcp[:-1]
        & tcp[1:]
        & (nxt[:-1] == seq[1:])
        & ((flags[:-1] & _TCP_ENDS_RUN) == 0)
        & ((flags[1:] & dc.TCP_SYN) == 0)
    )
    return np.concatenate(([0], np.flatnonzero(~joins) + 1, [n]))


def _sessions(
    ended: np.ndarray,
    positions: np.ndarray,
    apps: dict[int, AppState | FinishedApp],
    first_pos: dict[int, tuple[int, int]],
    flush_reason: str,
) -> list[Session]:
    """A `Session` per ended record; a session's app state goes with its last one."""
    n = len(ended)
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(ended["npos"], out=bounds[1:])
    cut = bounds.tolist()
    cols = {name: ended[name].tolist() for name in ENDED.names or () if name != "macs"}
    macs = np.ascontiguousarray(ended["macs"]).tobytes()  # 2 x 4 x 6 bytes each
    files, pos, plen = positions["file"], positions["pos"], positions["len"]
    out = []
    for i in range(n):
        s = Session()
        _fill_scalars(s, cols, i)
        reason, serial = cols["end_reason"][i], cols["serial"][i]
        s.end_reason = END_REASONS.get(reason, flush_reason)
        s.app = apps.get(serial) if reason == END_SEGMENT else apps.pop(serial, None)
        nmac, nttl, ttls = cols["nmac"][i], cols["nttl"][i], cols["ttls"][i]
        nvlan, vlans = cols["nvlan"][i], cols["vlans"][i]
        s.vlan = (vlans[0][: nvlan[0]], vlans[1][: nvlan[1]])
        s.macs = (_macs(macs, i * 48, nmac[0]), _macs(macs, i * 48 + 24, nmac[1]))
        s.ttls = (set(ttls[0][: nttl[0]]), set(ttls[1][: nttl[1]]))
        nicmp = cols["nicmp"][i]
        # first-seen order: the first pair is the client's first packet
        s.icmp = [(int(t), int(c)) for t, c in cols["icmp"][i][:nicmp]]
        a, z = cut[i], cut[i + 1]
        s.file, s.pos, s.plen = files[a:z], pos[a:z], plen[a:z]
        s.first_pos = _first_pos(s, serial, reason == END_SEGMENT, first_pos)
        out.append(s)
    return out


def _first_pos(
    s: Session, serial: int, more: bool, known: dict[int, tuple[int, int]]
) -> tuple[int, int]:
    """Where the session's first packet lies, remembered across its segments."""
    if s.segment == 0:
        first = (int(s.file[0]), int(s.pos[0])) if len(s.file) else (-1, -1)
    else:
        first = known.get(serial, (-1, -1))
    if more:
        known[serial] = first
    else:
        known.pop(serial, None)
    return first


def _macs(raw: builtins.bytes, start: int, count: int) -> set[builtins.bytes]:
    return {raw[m : m + 6] for m in range(start, start + 6 * count, 6)}


def _fill_scalars(s: Session, cols: dict[str, list[Any]], i: int) -> None:
    key = cols["key"][i]
    s.key = key
    s.hash = cols["hash"][i]
    s.proto, s.ip_version = key[36], key[37]
    s.client = cols["client"][i]
    s.segment = cols["segment"][i]
    s.session_ts = cols["session_ts"][i]
    s.first_ts, s.last_ts = cols["first_ts"][i], cols["last_ts"][i]
    s.packets, s.bytes = cols["packets"][i], cols["bytes"][i]
    s.payload, s.tcp = cols["payload"][i], cols["tcp"][i]
    s.tunnel = cols["tunnel"][i]
