"""fpc-capture into a real Elasticsearch node, analyst queries, and retrieval
of a session's packets through a central fpc-pcapd that relays to the node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from test_retrieval import (
    arkime_sessions,
    find_ours,
    served_packets,
    source_packets,
)

from conftest import CORPUS

pytestmark = pytest.mark.es
ROOT = Path(__file__).parents[1]
FILES = ["http-301-get", "dns-udp", "openssl-tls1_2", "v6-http", "smtp-starttls"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ingested(tmp_path, es_url, es_prefix, es_client):
    """Records printed by fpc-capture for FILES, indexed under a fresh prefix."""
    conf = tmp_path / "fpc.toml"
    conf.write_text(
        f'node = "sensor1"\n[es]\nurl = "{es_url}"\nprefix = "{es_prefix}"\n'
    )
    paths = [str(CORPUS / "arkime" / f"{n}.pcap") for n in FILES]
    result = subprocess.run(
        [sys.executable, "-m", "fpc.cli", "-c", str(conf), "--data-dir",
         str(tmp_path / "sensor"), "--print", "-r", *paths],
        capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    es_client.indices.refresh(index=f"{es_prefix}-*")
    return records, tmp_path / "sensor"


def search(es_client, prefix, query, **kw):
    return es_client.search(index=f"{prefix}-sessions", query=query, size=1000, **kw)


def test_es_documents_equal_the_sessions_produced(ingested, es_client, es_prefix):
    records, _ = ingested
    assert records
    count = es_client.count(index=f"{es_prefix}-sessions")["count"]
    assert count == len(records)
    ids = {
        h["_id"]
        for h in search(es_client, es_prefix, {"match_all": {}})["hits"]["hits"]
    }
    assert ids == {r["event"]["id"] for r in records}


def test_es_analyst_queries_return_the_right_sessions(ingested, es_client, es_prefix):
    records, _ = ingested
    ip = records[0]["source"]["ip"]
    want = {r["event"]["id"] for r in records if ip in (r["source"]["ip"],)}
    hits = search(es_client, es_prefix, {"term": {"source.ip": ip}})["hits"]["hits"]
    assert {h["_id"] for h in hits} == want

    starts = sorted(r["@timestamp"] for r in records)
    lo, hi = starts[len(starts) // 3], starts[2 * len(starts) // 3]
    rng = {"range": {"@timestamp": {"gte": lo, "lte": hi}}}
    hits = search(es_client, es_prefix, rng)["hits"]["hits"]
    assert {h["_id"] for h in hits} == {
        r["event"]["id"] for r in records if lo <= r["@timestamp"] <= hi
    }

    aggs = {"ports": {"terms": {"field": "destination.port", "size": 100}}}
    res = es_client.search(index=f"{es_prefix}-sessions", size=0, aggs=aggs)
    got = {b["key"]: b["doc_count"] for b in res["aggregations"]["ports"]["buckets"]}
    assert got == dict(Counter(r["destination"]["port"] for r in records))

    domains = [d for r in records for d in r.get("url", {}).get("domain", [])]
    assert domains
    hits = search(es_client, es_prefix, {"term": {"url.domain": domains[0]}})
    assert {h["_id"] for h in hits["hits"]["hits"]} == {
        r["event"]["id"]
        for r in records
        if domains[0] in r.get("url", {}).get("domain", [])
    }


def test_es_node_registry_and_stats(ingested, es_client, es_prefix):
    records, _ = ingested
    node = es_client.get(index=f"{es_prefix}-nodes", id="sensor1")["_source"]
    assert node["pcap_dir"].endswith("pcap")
    query = {"term": {"observer.name": "sensor1"}}
    stats = es_client.search(index=f"{es_prefix}-stats", query=query, size=10)
    rows = [h["_source"]["stats"] for h in stats["hits"]["hits"]]
    assert rows
    assert max(r["packets_received"] for r in rows) == sum(
        r["network"]["packets"] for r in records
    )


def start_pcapd(data_dir, node, es_url, prefix, port, log_dir):
    log_path = Path(log_dir) / f"pcapd-{node}.log"
    where = ["--data-dir", str(data_dir)] if data_dir else []
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fpc.server", *where,
             "--node", node, "--es", es_url, "--es-prefix", prefix,
             "--listen", f"127.0.0.1:{port}"],
            stderr=log, cwd=ROOT,
        )  # fmt: skip
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions?limit=1")
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    text = log_path.read_text()
    raise AssertionError(f"fpc-pcapd for {node} did not start:\n{text}")


def test_es_central_pcapd_relays_to_the_node_with_the_files(
    ingested, es_url, es_prefix, tmp_path
):
    records, sensor_dir = ingested
    p_sensor, p_central = free_port(), free_port()
    sensor = start_pcapd(sensor_dir, "sensor1", es_url, es_prefix, p_sensor, tmp_path)
    # the central instance has no data directory: it holds no packets
    central = start_pcapd(None, "central", es_url, es_prefix, p_central, tmp_path)
    try:
        checked = 0
        for name in FILES:
            for theirs in arkime_sessions(name):
                ours = find_ours(records, theirs)
                positions = [p for p in theirs.get("packetPos", []) if p >= 0]
                if ours is None or len(positions) != theirs["network"]["packets"]:
                    continue
                sid = ours["event"]["id"]
                url = f"http://127.0.0.1:{p_central}/api/session/{sid}.pcap"
                assert served_packets(url) == source_packets(name, positions)
                checked += 1
        assert checked >= 5
    finally:
        for proc in (sensor, central):
            proc.terminate()
            proc.wait(timeout=10)


def test_es_two_workers_index_every_session_and_the_summed_stats(
    tmp_path, es_url, es_prefix, es_client
):
    conf = tmp_path / "fpc.toml"
    conf.write_text(f'node = "w2"\n[es]\nurl = "{es_url}"\nprefix = "{es_prefix}"\n')
    paths = [str(CORPUS / "arkime" / f"{n}.pcap") for n in FILES]
    result = subprocess.run(
        [sys.executable, "-m", "fpc.cli", "-c", str(conf), "--workers", "2",
         "--data-dir", str(tmp_path / "d"), "--print", "-r", *paths],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    es_client.indices.refresh(index=f"{es_prefix}-*")
    assert es_client.count(index=f"{es_prefix}-sessions")["count"] == len(records)
    files = es_client.search(index=f"{es_prefix}-files", size=1000)["hits"]["hits"]
    numbers = [h["_source"]["file_num"] for h in files]
    assert len(numbers) == len(set(numbers)) >= 2  # one file per worker at least
    query = {"term": {"observer.name": "w2"}}
    stats = es_client.search(index=f"{es_prefix}-stats", query=query, size=100)
    rows = [h["_source"]["stats"] for h in stats["hits"]["hits"]]
    assert max(r["packets_received"] for r in rows) == sum(
        r["network"]["packets"] for r in records
    )
