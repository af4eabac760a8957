"""Node stats: periodic health documents in `<prefix>-stats`, and `fpc-stats`.

In: a callable from the pipeline returning its counters (totals since start:
packets_received, packets_dropped, bytes, sessions, active_sessions,
pcap_bytes_written), plus process and disk figures from psutil and the
indexer's queue and spool. Out: one stats document per interval, sent through
the indexer (so an outage spools them like SPI records); `fpc-stats` prints
the latest document of each node. The reporter runs on its own thread.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psutil
from elasticsearch import Elasticsearch

from fpc.errors import FpcError
from fpc.logsetup import setup_logging
from fpc.store.es import EsStore

logger = logging.getLogger(__name__)

INTERVAL_S = 5.0
RATES = {"bytes": "bytes_per_s", "sessions": "sessions_per_s"}
PASSED = (
    "packets_received",
    "packets_dropped",
    "active_sessions",
    "pcap_bytes_written",
)
COLUMNS = (
    ("node", "node", "{}"),
    ("age_s", "age", "{:.0f}s"),
    ("packets_received", "packets", "{:,}"),
    ("packets_dropped", "drops", "{:,}"),
    ("bytes_per_s", "bytes/s", "{:,.0f}"),
    ("sessions_per_s", "sess/s", "{:,.1f}"),
    ("active_sessions", "active", "{:,}"),
    ("pcap_bytes_written", "pcap", "{:,}"),
    ("disk_free_bytes", "disk free", "{:,}"),
    ("memory_rss_bytes", "rss", "{:,}"),
    ("cpu_percent", "cpu%", "{:.0f}"),
    ("indexer_queue", "queue", "{:,}"),
    ("indexer_spool_bytes", "spool", "{:,}"),
)


class NodeStatsReporter:
    """Every `interval_s`, sends a stats document for `node` through `store`."""

    def __init__(
        self,
        store: EsStore,
        node: str,
        counters: Callable[[], dict[str, int]],
        data_dir: str = ".",
        interval_s: float = INTERVAL_S,
    ) -> None:
        self.store = store
        self.node = node
        self.counters = counters
        self.data_dir = data_dir
        self.interval_s = interval_s
        self.sent = 0
        self.failed = 0
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # first call only starts the measurement
        self._last: tuple[float, dict[str, int]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="fpc-nodestats", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Send a last document, then end the thread."""
        self._stop.set()
        self._thread.join(self.interval_s + 5)

    def _run(self) -> None:
        while True:
            self.report()
            if self._stop.wait(self.interval_s):
                self.report()
                return

    def report(self) -> None:
        """Build and submit one document; a failing counters callable is counted."""
        try:
            stats = self.sample()
        except Exception:  # the callable is foreign code; keep reporting
            self.failed += 1
            logger.exception(
                "stats sample failed node=%s failed=%d", self.node, self.failed
            )
            return
        now = datetime.now(UTC)
        doc = {
            "@timestamp": now.isoformat(),
            "observer": {"name": self.node},
            "stats": stats,
        }
        doc_id = f"{self.node}-{int(now.timestamp() * 1000)}"
        self.store.indexer.submit([(f"{self.store.prefix}-stats", doc_id, doc)])
        self.sent += 1

    def sample(self) -> dict[str, float]:
        """Counters, rates since the previous sample, process and disk figures."""
        totals = self.counters()
        now = time.monotonic()
        out: dict[str, float] = {k: totals[k] for k in PASSED if k in totals}
        if self._last is not None:
            then, before = self._last
            for total, rate in RATES.items():
                if total in totals and total in before and now > then:
                    out[rate] = (totals[total] - before[total]) / (now - then)
        self._last = (now, totals)
        indexer = self.store.indexer.stats()
        out.update(
            disk_free_bytes=psutil.disk_usage(self.data_dir).free,
            memory_rss_bytes=self._process.memory_info().rss,
            cpu_percent=self._process.cpu_percent(None),
            indexer_queue=indexer["queue"],
            indexer_spool_bytes=indexer["spool_bytes"],
        )
        return out


def latest_per_node(es: Elasticsearch, prefix: str) -> list[dict[str, Any]]:
    """The newest stats document of every node, by node name."""
    aggs = {
        "nodes": {
            "terms": {"field": "observer.name", "size": 1000},
            "aggs": {
                "last": {"top_hits": {"size": 1, "sort": [{"@timestamp": "desc"}]}}
            },
        }
    }
    resp = es.search(
        index=f"{prefix}-stats", size=0, aggs=aggs, ignore_unavailable=True
    )
    if "aggregations" not in resp:
        return []
    rows = []
    for bucket in resp["aggregations"]["nodes"]["buckets"]:
        hit = bucket["last"]["hits"]["hits"][0]["_source"]
        rows.append(
            {
                "node": hit["observer"]["name"],
                "@timestamp": hit["@timestamp"],
                **hit["stats"],
            }
        )
    return sorted(rows, key=lambda r: r["node"])


def format_table(rows: list[dict[str, Any]], now: datetime | None = None) -> str:
    """Fixed-width table, one line per node; missing values shown as '-'."""
    now = now or datetime.now(UTC)
    cells = [[title for _, title, _ in COLUMNS]]
    for row in rows:
        row = {
            **row,
            "age_s": (now - datetime.fromisoformat(row["@timestamp"])).total_seconds(),
        }
        cells.append(
            [
                fmt.format(row[key]) if row.get(key) is not None else "-"
                for key, _, fmt in COLUMNS
            ]
        )
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True))
        for line in cells
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from fpc.esdb import add_es_args

    p = argparse.ArgumentParser(prog="fpc-stats", description=__doc__.splitlines()[0])
    add_es_args(p)
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=INTERVAL_S,
        default=None,
        metavar="SECONDS",
        help="reprint every SECONDS until Ctrl-C",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from fpc.esdb import es_config
    from fpc.store.es import connect, translate_errors

    setup_logging()
    args = parse_args(argv)
    try:
        es = connect(es_config(args))
        while True:
            with translate_errors(args.es, f"reading {args.prefix}-stats"):
                rows = latest_per_node(es, args.prefix)
            if args.watch:
                print("\033[H\033[J", end="")
            print(format_table(rows) if rows else f"no stats in {args.prefix}-stats")
            if not args.watch:
                return 0
            time.sleep(args.watch)
    except FpcError as exc:
        logger.critical("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
