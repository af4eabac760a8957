"""Pytest fixtures for tests marked `es`: a real Elasticsearch node from `fpc-es`.

Load with `pytest_plugins = ["esnode_fixture"]` in tests/conftest.py (or
`-p esnode_fixture` with tests/ on PYTHONPATH). The node listens on
ES_TEST_PORT; if one already answers there it is reused and left running,
otherwise a fresh one is started for the session and stopped at its end.
Every test gets its own ES index prefix, wiped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from fpc import esdb, esnode

ES_TEST_PORT = 9250


@pytest.fixture(scope="session")
def es_cluster() -> Iterator[esnode.Cluster]:
    """The running test cluster (single node on ES_TEST_PORT)."""
    cluster = esnode.Cluster(esnode.default_home(), 1, ES_TEST_PORT)
    try:
        esnode.get_json(f"{cluster.url}/_cluster/health")
        yield cluster
        return
    except OSError:
        pass
    esnode.start(cluster, fresh=True)
    try:
        yield cluster
    finally:
        esnode.stop(cluster)


@pytest.fixture(scope="session")
def es_url(es_cluster: esnode.Cluster) -> str:
    return es_cluster.url


@pytest.fixture
def es_client(es_url: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_url, request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def es_prefix(es_client: Elasticsearch) -> Iterator[str]:
    """A fresh ES index prefix for one test; its ES indices are deleted after."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    esdb.wipe(es_client, prefix)


@pytest.fixture
def es_spool(tmp_path: Path) -> str:
    return str(tmp_path / "es-spool")


BASE_NS = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z


def make_record(i: int, node: str = "n1", base_ns: int = BASE_NS) -> dict:
    """SPI record number i, its values a plain function of i (see the asserts)."""
    start = base_ns + i * 1_000_000_000
    end = start + 500_000_000
    return {
        "@timestamp": iso(start),
        "event": {"id": f"{node}-{i:08x}", "start": iso(start), "end": iso(end),
                  "duration": end - start, "kind": "event",
                  "category": ["network"], "dataset": "fpc.session"},
        "observer": {"name": node},
        "source": {"ip": f"10.0.{i % 4}.{i % 250 + 1}", "port": 40000 + i,
                   "packets": 3, "bytes": 300},
        "destination": {"ip": f"192.168.1.{i % 3 + 1}", "port": (80, 443, 53)[i % 3],
                        "packets": 2, "bytes": 200},
        "network": {"transport": "udp" if i % 3 == 2 else "tcp", "packets": 5},
        "fpc": {"session": f"{node}-{i:08x}", "segment": 0,
                "protocols": ["udp", "dns"] if i % 3 == 2 else ["tcp"],
                "packet": {"file": [1, 1], "pos": [24 + i, 124 + i], "len": [60, 70]}},
    }  # fmt: skip


def iso(ts_ns: int) -> str:
    from datetime import UTC, datetime

    sec, frac = divmod(ts_ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"
