"""Stage 5b: bulk indexing of SPI records into Elasticsearch, off the packet path.

In: (ES index, `_id`, SPI record) triples from `submit()`, called by the
session table on the capture thread. Out: ES bulk requests (chunks cut by
record count and by bytes, or after `flush_interval_s` on a quiet node) sent
by the indexer's own thread.

Nothing is dropped silently. While the cluster is unreachable or overloaded
(429/5xx, timeouts, refused connections), chunks go to an on-disk spool of
append-only files, themselves valid bulk bodies, replayed oldest first once
it answers again; records keep their submit order across memory and disk.
Records ES refuses (mapping errors, 4xx) are counted, logged with the reason
and appended to `dead-letter.jsonl`. `submit()` never waits on the network:
when the memory queue is full it appends to the spool instead.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError

logger = logging.getLogger(__name__)

Item = tuple[str, str, dict[str, Any]]  # (ES index, _id, SPI record) as submitted
Entry = tuple[str, str, bytes]  # (ES index, _id, record as JSON)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
DEAD_LETTER_NAME = "dead-letter.jsonl"
LOSS_LOG_INTERVAL_S = 10.0  # at most one error line per interval on the hot path
COUNTERS = (
    "queued",
    "indexed",
    "retried",
    "spooled",
    "dead_lettered",
    "lost",
    "chunks",
)


@dataclass(frozen=True)
class IndexerConfig:
    spool_dir: str = "fpc-data/es-spool"
    chunk_records: int = 1000
    chunk_bytes: int = 4 << 20
    flush_interval_s: float = 1.0
    queue_records: int = 50_000
    retries: int = 3  # quick retries of a chunk before it goes to the spool
    backoff_s: float = 0.25
    max_backoff_s: float = 15.0


class Unavailable(Exception):
    """The cluster cannot take the chunk now; try again later."""


def encode(index: str, doc_id: str, record: dict[str, Any]) -> Entry:
    return index, doc_id, json.dumps(record, separators=(",", ":")).encode()


def bulk_lines(entries: list[Entry]) -> bytes:
    """A bulk body: one action line and one source line per record."""
    out = bytearray()
    for index, doc_id, source in entries:
        out += json.dumps({"index": {"_index": index, "_id": doc_id}}).encode()
        out += b"\n" + source + b"\n"
    return bytes(out)


def parse_bulk(data: bytes) -> tuple[list[Entry], list[bytes]]:
    """Entries of a spool file (a bulk body), and the lines that do not parse."""
    lines = data.split(b"\n")
    out, bad = [], []
    for action, source in zip(lines[0::2], lines[1::2], strict=False):
        if not source:
            continue
        try:
            meta = json.loads(action)["index"]
            out.append((meta["_index"], meta["_id"], source))
        except (ValueError, KeyError, TypeError):
            bad.append(action + b"\n" + source)
    return out, bad


class Spool:
    """Append-only spool files, oldest first; each file is a bulk body.

    Files are named by a sequence number: `append` adds to the newest file,
    `prepend` writes a file ordered before all others (records older than
    those already spooled). Callers hold the indexer's lock.
    """

    def __init__(self, directory: str) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._tail: tuple[Path, object] | None = None
        self.records = sum(count_records(p) for p in self.files())
        self.bytes = sum(p.stat().st_size for p in self.files())

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("spool-*.ndjson"))

    def _path(self, seq: int) -> Path:
        return self.dir / f"spool-{seq:020d}.ndjson"

    def _seq(self, path: Path) -> int:
        return int(path.stem.split("-")[1])

    # TODO: appends are flushed to the OS but not fsynced (one fsync per chunk
    # would cap the spool at disk latency); a power cut can lose the last ones.
    def append(self, entries: list[Entry]) -> None:
        if self._tail is None:
            files = self.files()
            seq = self._seq(files[-1]) + 1 if files else 10**15
            path = self._path(seq)
            self._tail = (path, open(path, "ab"))  # noqa: SIM115 - kept open
        body = bulk_lines(entries)
        fh: Any = self._tail[1]
        start = fh.tell()
        try:
            fh.write(body)
            fh.flush()
        except OSError:  # e.g. disk full: cut the torn write, start a new file
            fh.truncate(start)
            fh.close()
            self._tail = None
            raise
        self.records += len(entries)
        self.bytes += len(body)

    def prepend(self, entries: list[Entry]) -> None:
        files = self.files()
        seq = self._seq(files[0]) - 1 if files else 10**15
        body = bulk_lines(entries)
        self._path(seq).write_bytes(body)
        self.records += len(entries)
        self.bytes += len(body)

    def take_oldest(self) -> Path | None:
        """Oldest file, closed for appends so it can be replayed."""
        files = self.files()
        if not files:
            return None
        if self._tail is not None and self._tail[0] == files[0]:
            self._tail[1].close()  # type: ignore[attr-defined]
            self._tail = None
        return files[0]

    def remove(self, path: Path, records: int) -> None:
        self.bytes -= path.stat().st_size
        path.unlink()
        self.records -= records


def count_records(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for _ in fh) // 2


class Indexer:
    """Feeds SPI records to Elasticsearch from its own thread (see module doc)."""

    def __init__(self, es: Elasticsearch, cfg: IndexerConfig) -> None:
        self.es = es
        self.cfg = cfg
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._queue: queue.Queue[Item] = queue.Queue(maxsize=cfg.queue_records)
        self._lock = threading.Lock()  # guards the queue/spool switch and spool
        self._count_lock = threading.Lock()
        self._spool = Spool(cfg.spool_dir)
        self._spooling = self._spool.records > 0  # replay leftovers first
        self._outstanding = 0  # records in memory, not yet indexed or spooled
        self._backoff = cfg.backoff_s
        self._loss_logged = -LOSS_LOG_INTERVAL_S
        self._unavailable = False  # the last request failed for want of a cluster
        self._held: list[Entry] = []  # neither sent nor spooled (disk full)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="fpc-indexer", daemon=True
        )
        self.dead_letter_path = Path(cfg.spool_dir) / DEAD_LETTER_NAME

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Send or spool what is in memory, then end the thread.

        Records submitted after this go straight to the spool.
        """
        with self._lock:
            self._spooling = True
        self._stop.set()
        self._thread.join(timeout_s)

    def submit(self, items: list[Item]) -> None:
        """Queue records for indexing; never waits on the network."""
        with self._lock:
            rest = items
            if not self._spooling:
                rest = self._enqueue(items)
            if rest:
                self._spool_items(rest)

    def _enqueue(self, items: list[Item]) -> list[Item]:
        """Put items in the memory queue; return those that did not fit."""
        for n, item in enumerate(items):
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                logger.warning(
                    "indexer queue full, spooling to disk records=%d dir=%s",
                    len(items) - n,
                    self._spool.dir,
                )
                self._spooling = True
                self._add(queued=n)
                self._outstanding += n
                return items[n:]
        self._add(queued=len(items))
        self._outstanding += len(items)
        return []

    def _spool_items(self, items: list[Item]) -> None:
        entries = [e for e in (self._encode(*i) for i in items) if e is not None]
        try:
            self._spool.append(entries)
        except OSError as exc:
            self._add(lost=len(entries))
            if time.monotonic() - self._loss_logged < LOSS_LOG_INTERVAL_S:
                return
            self._loss_logged = time.monotonic()
            logger.error(
                "records lost, memory queue full and spool unwritable records=%d "
                "lost_total=%d dir=%s error=%s; free disk space or raise "
                "queue_records",
                len(entries),
                self.counters["lost"],
                self._spool.dir,
                exc,
            )
            return
        self._add(spooled=len(entries))

    def _encode(self, index: str, doc_id: str, record: dict[str, Any]) -> Entry | None:
        try:
            return encode(index, doc_id, record)
        except (TypeError, ValueError) as exc:
            self._dead_letter(index, doc_id, repr(record).encode(), 0, str(exc))
            return None

    def _add(self, **counts: int) -> None:
        with self._count_lock:
            for name, n in counts.items():
                self.counters[name] += n

    def stats(self) -> dict[str, int]:
        """Counters plus queue depth and spool size."""
        with self._lock:
            return {
                **self.counters,
                "queue": self._queue.qsize(),
                "spool_records": self._spool.records,
                "spool_bytes": self._spool.bytes,
            }

    def pending(self) -> int:
        """Records accepted but not yet indexed or dead-lettered."""
        with self._lock:
            return self._outstanding + self._spool.records

    def flush(self, timeout_s: float, while_unavailable: bool = True) -> bool:
        """Wait until every accepted record is indexed or dead-lettered.

        With `while_unavailable` False, give up as soon as the cluster is known
        to be down (the records are safe in the spool).
        """
        deadline = time.monotonic() + timeout_s
        while self.pending() > 0:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            if self._unavailable and not while_unavailable:
                return False
            time.sleep(0.02)
        return True

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception:  # a bug here must not end indexing silently
                logger.exception("indexer step failed; retrying in 1s")
                self._stop.wait(1.0)

    def _step(self) -> bool:
        """One unit of work; False once stopped with nothing left in memory."""
        if self._held:
            return self._retry_held()
        entries = self._collect()
        if entries:
            self._deliver(entries)
        elif self._stop.is_set():
            return False  # the spool stays on disk and is replayed at next start
        elif self._spooling:
            self._replay_one()
        return True

    def _retry_held(self) -> bool:
        """Resend chunks that could be neither indexed nor spooled."""
        held, self._held = self._held, []
        if self._stop.is_set():
            self._add(lost=len(held))
            self._resolved(len(held))
            logger.error(
                "records lost at shutdown, cluster and spool both "
                "unavailable records=%d dir=%s",
                len(held),
                self._spool.dir,
            )
            return True  # go on with what is still queued
        self._stop.wait(self._backoff)
        self._backoff = min(self._backoff * 2, self.cfg.max_backoff_s)
        self._deliver(held)
        return True

    def _collect(self) -> list[Entry]:
        """Next chunk from the queue: full by count or bytes, or the wait is over."""
        out: list[Entry] = []
        size = 0
        deadline = time.monotonic() + self.cfg.flush_interval_s
        while len(out) < self.cfg.chunk_records and size < self.cfg.chunk_bytes:
            wait = deadline - time.monotonic()
            try:
                if self._stop.is_set() or self._spooling:
                    item = self._queue.get_nowait()
                else:
                    item = self._queue.get(timeout=max(wait, 0.001))
            except queue.Empty:
                break
            entry = self._encode(*item)
            if entry is None:
                self._resolved(1)
                continue
            out.append(entry)
            size += len(entry[2])
        return out

    def _resolved(self, n: int) -> None:
        with self._lock:
            self._outstanding -= n

    def _deliver(self, entries: list[Entry]) -> None:
        """Send a chunk from memory; if the cluster cannot take it, spool it."""
        try:
            self._send(entries)
        except Unavailable as exc:
            self._divert(entries, exc)
        self._resolved(len(entries))

    def _divert(self, entries: list[Entry], exc: Unavailable) -> None:
        """Spool the failed chunk and everything queued behind it, in order."""
        with self._lock:
            behind = []
            while True:
                try:
                    behind.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            rest = [e for e in (self._encode(*i) for i in behind) if e is not None]
            try:
                self._spool.prepend(entries + rest)
            except OSError as err:
                self._outstanding -= len(behind)
                self._hold(entries + rest, err)
                return
            self._outstanding -= len(behind)
            self._spooling = True
            self._add(spooled=len(entries) + len(rest))
        logger.warning(
            "cluster unavailable, spooling records=%d dir=%s reason=%s",
            len(entries) + len(rest),
            self._spool.dir,
            exc,
        )

    def _hold(self, entries: list[Entry], err: OSError) -> None:
        """Keep a chunk in memory when the spool cannot be written (lock held)."""
        self._held = entries
        self._outstanding += len(entries)
        logger.error(
            "cannot spool, holding records in memory records=%d dir=%s error=%s; "
            "free disk space",
            len(entries),
            self._spool.dir,
            err,
        )

    # TODO: a spool file whose replay fails part-way is sent again from its
    # start; _id makes that harmless in ES, but the indexed and dead_lettered
    # counters count those records twice.
    def _replay_one(self) -> None:
        """Send the oldest spool file; on success delete it, else back off."""
        with self._lock:
            path = self._spool.take_oldest()
            if path is None:
                self._spooling = False
                logger.info("spool drained, back to memory queue")
                return
        entries, bad = parse_bulk(path.read_bytes())
        for line in bad:
            self._dead_letter("", "", line, 0, f"corrupt line in spool file {path}")
        try:
            for start in range(0, len(entries), self.cfg.chunk_records):
                self._send(entries[start : start + self.cfg.chunk_records])
        except Unavailable as exc:
            logger.warning(
                "spool replay failed, retry_in_s=%.1f file=%s reason=%s",
                self._backoff,
                path.name,
                exc,
            )
            self._stop.wait(self._backoff)
            self._backoff = min(self._backoff * 2, self.cfg.max_backoff_s)
            return
        self._backoff = self.cfg.backoff_s
        with self._lock:
            self._spool.remove(path, len(entries))
        logger.info("spool file replayed file=%s records=%d", path.name, len(entries))

    def _send(self, entries: list[Entry]) -> None:
        """Index a chunk, retrying what is retryable; raise Unavailable if it stays."""
        if self._unavailable and self._stop.is_set():
            raise Unavailable("stopping while the cluster is unavailable")
        pending = entries
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                self._add(retried=len(pending))
                delay = min(
                    self.cfg.backoff_s * 2 ** (attempt - 1), self.cfg.max_backoff_s
                )
                logger.warning(
                    "bulk retry attempt=%d of %d records=%d",
                    attempt,
                    self.cfg.retries,
                    len(pending),
                )
                self._stop.wait(delay)
            try:
                pending = self._send_chunk(pending)
            except Unavailable as exc:
                last = exc
                continue
            if not pending:
                self._unavailable = False
                return
            last = Unavailable(f"{len(pending)} records answered 429/5xx")
        self._unavailable = True
        raise last

    def _send_chunk(self, entries: list[Entry]) -> list[Entry]:
        """One bulk request; returns the entries to retry."""
        try:
            body: Any = bulk_lines(entries)  # the client passes bytes through
            resp = self.es.bulk(operations=body)
        except TransportError as exc:
            raise Unavailable(str(exc)) from exc
        except ApiError as exc:
            if exc.meta.status in (400, 413):
                for index, doc_id, source in entries:
                    self._dead_letter(index, doc_id, source, exc.meta.status, str(exc))
                return []
            raise Unavailable(f"status {exc.meta.status}: {exc}") from exc
        self._add(chunks=1)
        if not resp["errors"]:
            self._add(indexed=len(entries))
            return []
        return self._sort_results(entries, resp["items"])

    def _sort_results(
        self, entries: list[Entry], items: list[dict[str, Any]]
    ) -> list[Entry]:
        retry = []
        first_reason = None
        for entry, item in zip(entries, items, strict=True):
            result = item["index"]
            status = result["status"]
            if status < 300:
                self._add(indexed=1)
            elif status in RETRY_STATUSES or status >= 500:
                retry.append(entry)
            else:
                reason = json.dumps(result.get("error"))
                first_reason = first_reason or reason
                self._dead_letter(entry[0], entry[1], entry[2], status, reason)
        if first_reason:
            logger.error(
                "records rejected by elasticsearch, see %s first_reason=%s",
                self.dead_letter_path,
                first_reason,
            )
        return retry

    def _dead_letter(
        self, index: str, doc_id: str, source: bytes, status: int, reason: str
    ) -> None:
        line = {
            "_index": index,
            "_id": doc_id,
            "status": status,
            "reason": reason,
            "record": source.decode("utf-8", "replace"),
        }
        with open(self.dead_letter_path, "a") as fh:
            fh.write(json.dumps(line) + "\n")
        self._add(dead_lettered=1)
