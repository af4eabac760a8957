"""The bulk indexer against a real node: rejects, spooling, a node restart, speed."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch, helpers
from esnode_fixture import make_record, new_prefix

from conftest import wait_until
from fpc.indexer import Indexer, IndexerConfig, Spool, count_records, encode
from fpc.store.es import EsStore

pytestmark = pytest.mark.es


def fast_config(spool: str, **changes: float) -> IndexerConfig:
    base = dict(spool_dir=spool, flush_interval_s=0.2, backoff_s=0.1, max_backoff_s=1.0)
    return IndexerConfig(**{**base, **changes})  # type: ignore[arg-type]


def all_ids(es: Elasticsearch, index: str) -> list[str]:
    """Every event.id in `index`, duplicates kept."""
    es.indices.refresh(index=index)
    hits = helpers.scan(es, index=index, query={"query": {"match_all": {}}},
                        _source=["event.id"], size=5000)  # fmt: skip
    return [h["_source"]["event"]["id"] for h in hits]


def test_indexer_rejected_records_go_to_dead_letter_file(es_url, es_prefix, es_spool):
    store = EsStore(es_url, prefix=es_prefix, indexer=fast_config(es_spool))
    unknown_field = make_record(1) | {"bogus": 1}
    bad_port = make_record(2)
    bad_port["source"]["port"] = "not-a-port"
    unencodable = make_record(3)
    unencodable["observer"]["name"] = b"raw bytes"
    store.save_sessions([make_record(0), unknown_field, bad_port, unencodable])
    store.flush()
    stats = store.indexer.stats()
    store.close()

    lines = store.indexer.dead_letter_path.read_text().splitlines()
    dead = {d["_id"]: d for d in map(json.loads, lines)}
    assert sorted(dead) == ["n1-00000001", "n1-00000002", "n1-00000003"]
    assert "strict_dynamic_mapping_exception" in dead["n1-00000001"]["reason"]
    assert dead["n1-00000002"]["status"] == 400
    assert "source.port" in dead["n1-00000002"]["reason"]
    assert json.loads(dead["n1-00000002"]["record"]) == bad_port
    assert "not JSON serializable" in dead["n1-00000003"]["reason"]
    assert (stats["indexed"], stats["dead_lettered"]) == (1, 3)


def test_indexer_full_queue_spools_and_loses_nothing(es_url, es_prefix, es_spool):
    store = EsStore(es_url, prefix=es_prefix,
                    indexer=fast_config(es_spool, queue_records=50))  # fmt: skip
    n = 3000
    for start in range(0, n, 100):
        store.save_sessions([make_record(i) for i in range(start, start + 100)])
    store.flush()
    stats = store.indexer.stats()
    ids = all_ids(store.es, f"{es_prefix}-sessions")
    store.close()
    assert stats["spooled"] > 0
    assert sorted(ids) == sorted(f"n1-{i:08x}" for i in range(n))
    assert list(Path(es_spool).glob("spool-*")) == []


def test_indexer_replays_spool_left_by_previous_run(es_url, es_prefix, es_spool):
    index = f"{es_prefix}-sessions-2025.11.24"
    spool = Spool(es_spool)
    spool.append([encode(index, f"n1-{i:08x}", make_record(i)) for i in range(25)])
    spool.take_oldest()  # closes the file as a stopped process would
    store = EsStore(es_url, prefix=es_prefix, indexer=fast_config(es_spool))
    assert store.indexer.pending() == 25
    store.flush()
    ids = all_ids(store.es, f"{es_prefix}-sessions")
    store.close()
    assert sorted(ids) == [f"n1-{i:08x}" for i in range(25)]


def fpc_es(cluster, command: str) -> None:
    cmd = [sys.executable, "-m", "fpc.esnode", command, "--home", str(cluster.home),
           "--http-port", str(cluster.http_port)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)


def feed(store: EsStore, n: int, done: threading.Event) -> None:
    for start in range(0, n, 200):
        store.save_sessions([make_record(i) for i in range(start, start + 200)])
        time.sleep(0.01)
    done.set()


def test_indexer_node_restart_mid_ingest_zero_loss_zero_duplicates(
    es_private_cluster, es_spool
):
    cluster = es_private_cluster  # stopping the shared node fails other tests
    store = EsStore(cluster.url, prefix=new_prefix(), indexer=fast_config(es_spool))
    n = 10_000
    done = threading.Event()
    feeder = threading.Thread(target=feed, args=(store, n, done))
    feeder.start()
    wait_until(lambda: store.indexer.stats()["indexed"] >= 1000, "1000 indexed")
    t0 = time.perf_counter()
    fpc_es(cluster, "stop")
    stopped_at = store.indexer.stats()["indexed"]
    t_stop = time.perf_counter() - t0
    wait_until(lambda: store.indexer.stats()["spooled"] > 0, "spooling")
    fpc_es(cluster, "start")
    t_start = time.perf_counter() - t0
    feeder.join()
    assert store.indexer.flush(120)
    t_flush = time.perf_counter() - t0
    stats = store.indexer.stats()
    ids = all_ids(store.es, f"{store.prefix}-sessions")
    store.close()
    print(
        f"restart: stopped after {t_stop:.1f}s, started {t_start:.1f}s, all "
        f"indexed {t_flush:.1f}s; indexed before stop={stopped_at} {stats}"
    )
    assert stopped_at < n and stats["spooled"] > 0
    assert len(ids) == n
    assert set(ids) == {f"n1-{i:08x}" for i in range(n)}
    assert stats["dead_lettered"] == 0


def run_plain_bulk(es: Elasticsearch, index: str, records: list[dict]) -> float:
    """Seconds for elasticsearch.helpers.bulk (defaults) to index `records`."""
    actions = ({"_index": index, "_id": r["event"]["id"], "_source": r}
               for r in records)  # fmt: skip
    t0 = time.perf_counter()
    ok, errors = helpers.bulk(es, actions, stats_only=True)
    assert (ok, errors) == (len(records), 0)
    return time.perf_counter() - t0


def run_indexer(store: EsStore, records: list[dict]) -> float:
    """Seconds from the first submit() until the indexer has sent everything."""
    t0 = time.perf_counter()
    for start in range(0, len(records), 500):
        store.save_sessions(records[start : start + 500])
    assert store.indexer.flush(120)
    return time.perf_counter() - t0


def test_indexer_throughput_against_helpers_bulk(es_url, es_prefix, es_spool):
    """Same records both ways, ES indices created beforehand, order alternated."""
    n = 3000
    es = Elasticsearch(es_url, request_timeout=60)
    store = EsStore(es_url, prefix=es_prefix, indexer=fast_config(es_spool))
    ref_index = f"{es_prefix}-sessions-reference"
    run_plain_bulk(es, ref_index, [make_record(i, "warm") for i in range(200)])
    run_indexer(store, [make_record(i, "warm") for i in range(200)])
    rounds = [[make_record(i, f"r{k}") for i in range(n)] for k in range(2)]
    plain_s = run_plain_bulk(es, ref_index, rounds[0])
    indexer_s = run_indexer(store, rounds[0])
    indexer_s += run_indexer(store, rounds[1])
    plain_s += run_plain_bulk(es, ref_index, rounds[1])
    store.close()
    es.indices.refresh(index=f"{es_prefix}-*")
    ours = f"{es_prefix}-sessions-2025.11.*"
    counts = es.count(index=ref_index)["count"], es.count(index=ours)["count"]
    es.close()
    print(f"throughput over {2 * n} records: helpers.bulk {2 * n / plain_s:.0f} "
          f"records/s, indexer {2 * n / indexer_s:.0f} records/s")  # fmt: skip
    assert counts == (2 * n + 200, 2 * n + 200)


def test_indexer_submit_to_searchable_delay(es_url, es_prefix, es_spool):
    store = EsStore(es_url, prefix=es_prefix,
                    indexer=IndexerConfig(spool_dir=es_spool))  # fmt: skip
    store.save_sessions([make_record(0)])
    store.flush()  # creates the ES index; its cost is not part of the delay
    delays = []
    for i in range(1, 4):
        record = make_record(i)
        t0 = time.perf_counter()
        store.save_sessions([record])
        while store.get_session(record["event"]["id"]) is None:
            time.sleep(0.02)
        delays.append(time.perf_counter() - t0)
    store.close()
    print(f"submit to searchable: median {statistics.median(delays):.2f}s "
          f"max {max(delays):.2f}s (flush interval 1.0s)")  # fmt: skip
    assert max(delays) < 5.0


def test_indexer_full_disk_and_dead_cluster_counts_every_record(small_disk, caplog):
    tiny_spool = small_disk("64k")  # the spool directory runs out of disk
    es = Elasticsearch("http://127.0.0.1:9", request_timeout=2)
    cfg = fast_config(str(tiny_spool), queue_records=100, retries=1)
    indexer = Indexer(es, cfg)
    indexer.start()
    n = 2000
    for start in range(0, n, 100):
        items = [make_record(i) for i in range(start, start + 100)]
        indexer.submit([("x-sessions-1", r["event"]["id"], r) for r in items])
    time.sleep(1.0)
    indexer.stop()
    stats = indexer.stats()
    kept = sum(count_records(p) for p in tiny_spool.glob("spool-*"))
    assert stats["lost"] > 0 and stats["indexed"] == 0
    assert kept + stats["lost"] == n
    assert "free disk space" in caplog.text


def test_store_close_with_dead_cluster_keeps_records_for_next_start(
    es_url, es_prefix, es_spool, caplog
):
    store = EsStore(es_url, prefix=es_prefix, indexer=fast_config(es_spool))
    store.indexer.es = Elasticsearch("http://127.0.0.1:9", request_timeout=2)
    store.save_sessions([make_record(i) for i in range(500)])
    t0 = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t0
    assert "records in the spool records=500" in caplog.text
    assert close_s < 15

    again = EsStore(es_url, prefix=es_prefix, indexer=fast_config(es_spool))
    again.flush()
    ids = all_ids(again.es, f"{es_prefix}-sessions")
    again.close()
    assert sorted(ids) == [f"n1-{i:08x}" for i in range(500)]
