"""Node stats reporter and fpc-stats against a real node."""

from __future__ import annotations

import pytest

from conftest import wait_until
from fpc import nodestats
from fpc.indexer import IndexerConfig
from fpc.store.es import EsStore

pytestmark = pytest.mark.es


class FakePipeline:
    """Counters that grow by fixed steps on every call."""

    def __init__(self) -> None:
        self.calls = 0

    def counters(self) -> dict[str, int]:
        self.calls += 1
        return {"packets_received": 1000 * self.calls, "packets_dropped": 3,
                "bytes": 500_000 * self.calls, "sessions": 10 * self.calls,
                "active_sessions": 42, "pcap_bytes_written": 4096}  # fmt: skip


def test_reporter_indexes_stats_and_cli_prints_them(
    es_url, es_prefix, es_spool, tmp_path, capsys
) -> None:
    cfg = IndexerConfig(spool_dir=es_spool, flush_interval_s=0.1)
    store = EsStore(es_url, prefix=es_prefix, indexer=cfg)
    pipeline = FakePipeline()
    reporters = [
        nodestats.NodeStatsReporter(store, node, pipeline.counters, str(tmp_path), 0.2)
        for node in ("alpha", "beta")
    ]
    for r in reporters:
        r.start()
    # a rate needs two rows; three show the interval repeats
    wait_until(lambda: min(r.sent for r in reporters) >= 3, "3 stats rows per node")
    for r in reporters:
        r.stop()
    store.flush()
    rows = nodestats.latest_per_node(store.es, es_prefix)
    store.close()

    assert [r["node"] for r in rows] == ["alpha", "beta"]
    assert all(r["packets_dropped"] == 3 and r["active_sessions"] == 42 for r in rows)
    assert all(r["bytes_per_s"] > 0 and r["disk_free_bytes"] > 0 for r in rows)

    assert nodestats.main(["--es", es_url, "--prefix", es_prefix]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["node", "age", "packets"]
    assert [line.split()[0] for line in lines[1:]] == ["alpha", "beta"]


def test_reporter_counts_failing_counters(es_url, es_prefix, es_spool) -> None:
    store = EsStore(es_url, prefix=es_prefix, spool_dir=es_spool)

    def broken() -> dict[str, int]:
        raise RuntimeError("pipeline gone")

    reporter = nodestats.NodeStatsReporter(store, "n1", broken)
    reporter.report()
    store.close()
    assert (reporter.sent, reporter.failed) == (0, 1)


def test_cli_without_stats_says_so(es_url, es_prefix, capsys) -> None:
    assert nodestats.main(["--es", es_url, "--prefix", es_prefix]) == 0
    assert f"no stats in {es_prefix}-stats" in capsys.readouterr().out
