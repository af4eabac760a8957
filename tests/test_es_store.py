"""EsStore against a real node: SPI records, queries, PCAP file registry, sequence."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch
from esnode_fixture import BASE_NS, make_record

from fpc import esdb
from fpc.errors import StoreError
from fpc.indexer import IndexerConfig
from fpc.store.base import PcapFile, SessionQuery
from fpc.store.es import EsStore

pytestmark = pytest.mark.es

N = 60


@pytest.fixture
def store(es_url: str, es_prefix: str, es_spool: str) -> Iterator[EsStore]:
    cfg = IndexerConfig(spool_dir=es_spool, flush_interval_s=0.2)
    s = EsStore(es_url, prefix=es_prefix, indexer=cfg)
    yield s
    s.close()


@pytest.fixture(scope="module")
def filled(es_url: str, tmp_path_factory) -> Iterator[tuple[EsStore, list[dict]]]:
    """One store with N records, shared by the read-only tests of this module."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    spool = str(tmp_path_factory.mktemp("spool"))
    cfg = IndexerConfig(spool_dir=spool, flush_interval_s=0.2)
    s = EsStore(es_url, prefix=prefix, indexer=cfg)
    records = [make_record(i) for i in range(N)]
    s.save_sessions(records)
    s.flush()
    yield s, records
    s.close()
    with Elasticsearch(es_url) as client:
        esdb.wipe(client, prefix)


def ids(records: list[dict]) -> list[str]:
    return [r["event"]["id"] for r in records]


def test_store_get_session_returns_saved_record(filled) -> None:
    store, records = filled
    assert store.get_session(records[7]["event"]["id"]) == records[7]
    assert store.get_session("no-such-session") is None


def test_store_search_ip_matches_either_side(filled) -> None:
    store, records = filled
    got = store.search_sessions(SessionQuery(ip="192.168.1.2", limit=N))
    want = [r for r in records if r["destination"]["ip"] == "192.168.1.2"]
    assert ids(got) == ids(want)
    got = store.search_sessions(SessionQuery(ip="10.0.1.2", limit=N))
    assert ids(got) == ids([r for r in records if r["source"]["ip"] == "10.0.1.2"])


def test_store_search_port_protocol_and_node(filled) -> None:
    store, records = filled
    got = store.search_sessions(SessionQuery(port=443, protocol="tcp", limit=N))
    want = [r for r in records if r["destination"]["port"] == 443]
    assert ids(got) == ids(want)
    assert store.search_sessions(SessionQuery(node="other")) == []
    assert len(store.search_sessions(SessionQuery(protocol="DNS", limit=N))) == N // 3


def test_store_search_time_range_oldest_first_with_limit(filled) -> None:
    store, records = filled
    q = SessionQuery(start_ns=BASE_NS + 10 * 10**9, end_ns=BASE_NS + 19 * 10**9)
    assert ids(store.search_sessions(q)) == ids(records[10:20])
    q.limit = 3
    assert ids(store.search_sessions(q)) == ids(records[10:13])


def test_store_terms_aggregation_on_destination_port(filled, es_client) -> None:
    store, records = filled
    aggs = {"ports": {"terms": {"field": "destination.port"}}}
    resp = es_client.search(index=f"{store.prefix}-sessions", size=0, aggs=aggs)
    got = {b["key"]: b["doc_count"] for b in resp["aggregations"]["ports"]["buckets"]}
    assert got == Counter(r["destination"]["port"] for r in records)


def test_store_resave_replaces_not_duplicates(store, es_client) -> None:
    records = [make_record(i) for i in range(N)]
    store.save_sessions(records)
    changed = make_record(5)
    changed["source"]["packets"] = 99
    store.save_sessions([changed, records[6]])
    store.flush()
    assert es_client.count(index=f"{store.prefix}-sessions")["count"] == N
    assert store.get_session(changed["event"]["id"])["source"]["packets"] == 99


def test_store_daily_rotation_names_es_index_by_record_time(filled, es_client) -> None:
    store, _ = filled
    names = es_client.indices.get_alias(name=f"{store.prefix}-sessions")
    assert list(names) == [f"{store.prefix}-sessions-2025.11.24"]


def test_store_hourly_rotation(es_url, es_prefix, es_spool, es_client) -> None:
    cfg = IndexerConfig(spool_dir=es_spool, flush_interval_s=0.2)
    store = EsStore(es_url, prefix=es_prefix, rotation="hourly", indexer=cfg)
    store.save_sessions([make_record(0), make_record(3600)])
    store.close()
    names = sorted(es_client.indices.get_alias(name=f"{es_prefix}-sessions"))
    assert names == [f"{es_prefix}-sessions-2025.11.24.16",
                     f"{es_prefix}-sessions-2025.11.24.17"]  # fmt: skip


def test_store_file_registry_roundtrip(store: EsStore) -> None:
    f = PcapFile("n1", 7, "/data/n1-7.pcap", 1, 9, first_ts_ns=BASE_NS)
    store.save_file(f)
    assert store.get_file("n1", 7) == f
    f.closed, f.size, f.packets = True, 4096, 12
    store.save_file(f)
    assert store.get_file("n1", 7) == f
    assert store.get_file("n1", 8) is None


def test_next_file_num_never_repeats_under_concurrency(es_url, es_prefix, tmp_path):
    stores = [
        EsStore(es_url, prefix=es_prefix, spool_dir=str(tmp_path / f"s{i}"))
        for i in range(3)
    ]
    got: list[int] = []
    lock = threading.Lock()

    def take(s: EsStore) -> None:
        for _ in range(8):
            n = s.next_file_num("n1")
            with lock:
                got.append(n)

    threads = [threading.Thread(target=take, args=(s,)) for s in stores * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stores[0].next_file_num("n2") == 1
    for s in stores:
        s.close()
    assert sorted(got) == list(range(1, 49))


def test_next_file_num_continues_after_lost_counter(store, es_client) -> None:
    store.save_file(PcapFile("n1", 41, "/data/n1-41.pcap", 1, 9))
    es_client.indices.refresh(index=f"{store.prefix}-files")
    assert store.next_file_num("n1") == 42
    store.save_file(PcapFile("n1", 42, "/data/n1-42.pcap", 1, 9))
    es_client.indices.refresh(index=f"{store.prefix}-files")
    es_client.delete(index=f"{store.prefix}-sequence", id="n1", refresh=True)
    assert store.next_file_num("n1") == 43


def test_store_unreachable_cluster_raises_store_error(es_spool) -> None:
    with pytest.raises(StoreError, match="unreachable.*fpc-es status"):
        EsStore("http://127.0.0.1:9", prefix="x", spool_dir=es_spool)


def test_store_register_node(store: EsStore, es_client: Elasticsearch) -> None:
    store.register_node("n1", hostname="h1", version="0.1.0")
    store.register_node("n1", hostname="h1", version="0.1.0")
    doc = es_client.get(index=f"{store.prefix}-nodes", id="n1")["_source"]
    assert doc["hostname"] == "h1" and doc["started"] <= doc["last_seen"]


def test_pipeline_records_fit_the_strict_mapping(es_url, es_prefix, es_spool, tmp_path):
    """Real SPI records (sample pcap, every 6th corpus file) are all accepted."""
    from conftest import SAMPLES, corpus_files
    from fpc.config import load_config
    from fpc.errors import CaptureError
    from fpc.pipeline import Pipeline
    from fpc.reader import open_capture

    cfg = load_config(None, {"node": "es1", "data_dir": str(tmp_path / "data")})
    icfg = IndexerConfig(spool_dir=es_spool, flush_interval_s=0.2)
    store = EsStore(es_url, prefix=es_prefix, indexer=icfg)
    records: list[dict] = []
    pipeline = Pipeline(cfg, store, records.append)
    for path in [SAMPLES / "mixed-3000.pcap", *corpus_files("arkime")[::6]]:
        try:
            with open_capture(str(path)) as capture:
                for batch in capture.batches():
                    pipeline.process(batch)
        except CaptureError:
            pass  # damaged corpus files: the records before the damage count
    pipeline.finish()
    store.flush()
    stats = store.indexer.stats()
    count = store.es.count(index=f"{es_prefix}-sessions")["count"]
    sample = store.get_session(records[0]["event"]["id"])
    store.close()
    rejected = store.indexer.dead_letter_path
    assert stats["dead_lettered"] == 0, rejected.read_text()[:2000]
    assert count == len({r["event"]["id"] for r in records}) > 100
    assert sample == records[0]


def test_store_search_ip_finds_an_address_only_in_related_ip(store) -> None:
    # a DHCP exchange reported as 0.0.0.0 -> 255.255.255.255 whose messages
    # name the client's address and the server's
    record = make_record(3)
    record["related"] = {"ip": ["10.0.1.2", "192.168.1.2", "172.16.5.50"]}
    store.save_sessions([record, make_record(4)])
    store.flush()
    got = store.search_sessions(SessionQuery(ip="172.16.5.50", limit=N))
    assert ids(got) == [record["event"]["id"]]
