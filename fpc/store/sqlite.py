"""The embedded default store: SPI records and the PCAP file registry in SQLite.

Serves one node on its own when no Elasticsearch cluster is configured. The
capture process writes (processing thread); `fpc-pcapd` reads from another
process: WAL mode lets both work at once.
"""

from __future__ import annotations

import calendar
import functools
import ipaddress
import json
import logging
import sqlite3
import threading
from dataclasses import astuple, fields
from datetime import datetime
from typing import Any

from fpc.errors import StoreError
from fpc.store.base import PcapFile, SessionQuery, Store, encode_record

logger = logging.getLogger(__name__)

PAGE_BYTES = 16_384
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, session TEXT NOT NULL, node TEXT NOT NULL,
    start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    src_ip TEXT NOT NULL, dst_ip TEXT NOT NULL,
    src_port INTEGER NOT NULL, dst_port INTEGER NOT NULL,
    protocols TEXT NOT NULL, doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_start ON sessions (start_ns);
CREATE INDEX IF NOT EXISTS sessions_src ON sessions (src_ip);
CREATE INDEX IF NOT EXISTS sessions_dst ON sessions (dst_ip);
CREATE INDEX IF NOT EXISTS sessions_session ON sessions (session);
-- related.ip addresses of a record other than its endpoints (a DHCP client's),
-- for `ip` searches; a table of its own leaves the sessions rows as older
-- fpc versions write them.
CREATE TABLE IF NOT EXISTS session_ips (
    ip TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (ip, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS session_ips_id ON session_ips (id);
CREATE TABLE IF NOT EXISTS files (
    node TEXT NOT NULL, file_num INTEGER NOT NULL, path TEXT NOT NULL,
    linktype INTEGER NOT NULL, precision INTEGER NOT NULL,
    first_ts_ns INTEGER NOT NULL, last_ts_ns INTEGER NOT NULL,
    size INTEGER NOT NULL, packets INTEGER NOT NULL, closed INTEGER NOT NULL,
    PRIMARY KEY (node, file_num)
);
CREATE TABLE IF NOT EXISTS file_seq (node TEXT PRIMARY KEY, last INTEGER NOT NULL);
"""


def _ns(iso: str) -> int:
    """Nanoseconds from the RFC 3339 times of `fpc.spi.iso_ns`."""
    base, frac = iso.rstrip("Z").split(".")
    return _second_ns(base) + int(frac.ljust(9, "0")[:9])


@functools.lru_cache(maxsize=4096)
def _second_ns(base: str) -> int:
    # Records saved together mostly share their seconds. fromisoformat is C
    # code; strptime cost more than the rest of the row.
    return calendar.timegm(datetime.fromisoformat(base).timetuple()) * 1_000_000_000


class SqliteStore(Store):
    """Store backed by one SQLite file (created if missing)."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            # A record is a few KB (its packet positions): with 4 KB pages most
            # rows spill into overflow pages. Takes effect on a new file only.
            self._db.execute(f"PRAGMA page_size={PAGE_BYTES}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL with NORMAL syncs at checkpoints only: a commit per batch must not
            # force the file system to flush the PCAP data written meanwhile.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open session database {path} ({exc}); check that the data "
                "directory exists and is writable, or pass another --data-dir"
            ) from exc
        self._lock = threading.Lock()

    def _run(
        self, sql: str, args: tuple[Any, ...] | list[Any] = ()
    ) -> list[tuple[Any, ...]]:
        try:
            with self._lock, self._db:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"session database {self.path}: {exc}") from exc

    def next_file_num(self, node: str) -> int:
        # One statement: processes sharing the database never get the same number.
        rows = self._run(
            "INSERT INTO file_seq VALUES (?, 1) "
            "ON CONFLICT(node) DO UPDATE SET last = last + 1 RETURNING last",
            (node,),
        )
        return int(rows[0][0])

    def save_file(self, pcap_file: PcapFile) -> None:
        self._run(
            "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?,?,?,?)",
            astuple(pcap_file),
        )

    def get_file(self, node: str, file_num: int) -> PcapFile | None:
        rows = self._run(
            "SELECT * FROM files WHERE node = ? AND file_num = ?", (node, file_num)
        )
        if not rows:
            return None
        values = dict(zip((f.name for f in fields(PcapFile)), rows[0], strict=True))
        values["closed"] = bool(values["closed"])
        return PcapFile(**values)

    def save_sessions(self, records: list[dict[str, Any]]) -> None:
        rows = [_session_row(r) for r in records]
        try:
            with self._lock, self._db:
                self._db.executemany(
                    "INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [row for row, _ in rows],
                )
                named = [(r[0], ips) for r, ips in rows if ips]
                self._db.executemany(
                    "DELETE FROM session_ips WHERE id = ?", [(i,) for i, _ in named]
                )
                self._db.executemany(
                    "INSERT OR IGNORE INTO session_ips VALUES (?, ?)",
                    [(ip, i) for i, ips in named for ip in ips],
                )
        except sqlite3.Error as exc:
            raise StoreError(f"session database {self.path}: {exc}") from exc

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT doc FROM sessions WHERE id = ?", (session_id,))
        return json.loads(rows[0][0]) if rows else None

    def get_segments(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._run(
            "SELECT doc FROM sessions WHERE session = ? ORDER BY start_ns, id",
            (session_id,),
        )
        return [json.loads(r[0]) for r in rows]

    def search_sessions(self, query: SessionQuery) -> list[dict[str, Any]]:
        where, args = _where(query)
        sql = "SELECT doc FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_ns, id LIMIT ?"
        rows = self._run(sql, [*args, int(query.limit)])
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _session_row(r: dict[str, Any]) -> tuple[tuple[Any, ...], list[str]]:
    """The sessions row of `r`, and its related.ip addresses besides the
    endpoints."""
    fpc = r["fpc"]
    protocols = " " + " ".join(fpc["protocols"]) + " "
    # a non-IP Ethernet session has no address or port: "" and 0
    src_ip, dst_ip = r["source"].get("ip", ""), r["destination"].get("ip", "")
    related = r.get("related", {}).get("ip", ())
    row = (
        r["event"]["id"], fpc["session"], r["observer"]["name"],
        _ns(r["event"]["start"]), _ns(r["event"]["end"]),
        src_ip, dst_ip, r["source"].get("port", 0), r["destination"].get("port", 0),
        protocols, encode_record(r),
    )  # fmt: skip
    return row, [ip for ip in related if ip not in (src_ip, dst_ip)]


def _where(q: SessionQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if q.ip is not None:
        ip = str(ipaddress.ip_address(q.ip))
        # TODO: records saved before related.ip existed are found by their
        # endpoints only (a DHCP exchange by 0.0.0.0/255.255.255.255).
        where.append(
            "(src_ip = ? OR dst_ip = ? OR "
            "id IN (SELECT id FROM session_ips WHERE ip = ?))"
        )
        args += [ip, ip, ip]
    if q.port is not None:
        where.append("(src_port = ? OR dst_port = ?)")
        args += [q.port, q.port]
    if q.protocol is not None:
        where.append("protocols LIKE ?")
        args.append(f"% {q.protocol.lower()} %")
    if q.start_ns is not None:
        where.append("end_ns >= ?")
        args.append(q.start_ns)
    if q.end_ns is not None:
        where.append("start_ns <= ?")
        args.append(q.end_ns)
    if q.node is not None:
        where.append("node = ?")
        args.append(q.node)
    return where, args
