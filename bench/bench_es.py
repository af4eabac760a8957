"""Indexing into Elasticsearch: fpc's indexer against a plain `helpers.bulk` loop.

`python3 -m bench.bench_es [--es URL] [--records N] [--rounds R]` builds real SPI
records (the pipeline on samples/mixed-3000.pcap, node names varied to reach N),
then, alternating, indexes them with `elasticsearch.helpers.bulk` and through
`EsStore.save_sessions` (fpc's indexer thread) and reports records/s of each
and the ratio, plus the delay from `save_sessions` to searchable. Without
--es it starts a node of its own with fpc-es on port 9260 and stops it after.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers

from fpc import esdb, esnode
from fpc.config import load_config
from fpc.pipeline import Pipeline
from fpc.reader import open_capture
from fpc.store import open_store
from fpc.store.es import EsStore

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "mixed-3000.pcap"
OWN_PORT = 9260


def sample_records(n: int) -> list[dict[str, Any]]:
    """`n` SPI records made by the pipeline, copied under several node names."""
    with tempfile.TemporaryDirectory() as data:
        cfg = load_config(None, {"node": "bench", "data_dir": data})
        store = open_store(data)
        records: list[dict[str, Any]] = []
        pipeline = Pipeline(cfg, store, records.append)
        with open_capture(str(SAMPLE)) as capture:
            for batch in capture.batches():
                pipeline.process(batch)
        pipeline.finish()
        store.close()
    out = []
    for copy in range(n // len(records) + 1):
        for r in records:
            r = {**r, "event": {**r["event"], "id": f"{r['event']['id']}-c{copy}"}}
            out.append(r)
    return out[:n]


def plain_bulk(es: Elasticsearch, index: str, records: list[dict[str, Any]]) -> float:
    actions = (
        {"_index": index, "_id": r["event"]["id"], "_source": r} for r in records
    )
    t0 = time.perf_counter()
    helpers.bulk(es, actions)
    return time.perf_counter() - t0


def fpc_indexer(store: EsStore, records: list[dict[str, Any]]) -> float:
    t0 = time.perf_counter()
    for start in range(0, len(records), 500):
        store.save_sessions(records[start : start + 500])
    store.indexer.flush(600)
    return time.perf_counter() - t0


def searchable_delay(store: EsStore, records: list[dict[str, Any]]) -> list[float]:
    delays = []
    for r in records:
        t0 = time.perf_counter()
        store.save_sessions([r])
        while store.get_session(r["event"]["id"]) is None:
            time.sleep(0.01)
        delays.append(time.perf_counter() - t0)
    return delays


def run(url: str, n: int, rounds: int) -> None:
    records = sample_records(n)
    es = Elasticsearch(url, request_timeout=120)
    prefix = f"bench{int(time.time())}"
    with tempfile.TemporaryDirectory() as spool:
        store = EsStore(url, prefix=prefix, spool_dir=spool)
        plain_s = ours_s = 0.0
        for k in range(rounds):
            batch = [
                {**r, "event": {**r["event"], "id": f"{r['event']['id']}-r{k}"}}
                for r in records
            ]
            if k % 2:
                ours_s += fpc_indexer(store, batch)
                plain_s += plain_bulk(es, f"{prefix}-plain", batch)
            else:
                plain_s += plain_bulk(es, f"{prefix}-plain", batch)
                ours_s += fpc_indexer(store, batch)
        delays = searchable_delay(store, records[:5])
        store.close()
    esdb.wipe(es, prefix)
    es.indices.delete(index=f"{prefix}-plain", ignore_unavailable=True)
    total = n * rounds
    print(f"records: {total} ({rounds} rounds of {n}, order alternated)")
    print(f"helpers.bulk  {total / plain_s:10.0f} records/s")
    print(f"fpc indexer   {total / ours_s:10.0f} records/s")
    print(f"ratio fpc/helpers.bulk (throughput) {plain_s / ours_s:.2f}")
    print(
        f"save to searchable: median {statistics.median(delays):.2f} s, "
        f"max {max(delays):.2f} s (flush interval 1 s, refresh interval 1 s)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--es", help="cluster URL (default: start one with fpc-es)")
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args()
    if args.es:
        run(args.es, args.records, args.rounds)
        return
    cluster = esnode.Cluster(esnode.default_home(), 1, OWN_PORT)
    esnode.start(cluster, fresh=True)
    try:
        run(cluster.url, args.records, args.rounds)
    finally:
        esnode.stop(cluster)


if __name__ == "__main__":
    main()
