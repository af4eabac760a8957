"""Pytest fixtures for tests marked `es`: a real Elasticsearch node from `fpc-es`.

Load with `pytest_plugins = ["esnode_fixture"]` in tests/conftest.py (or
`-p esnode_fixture` with tests/ on PYTHONPATH). The node listens on
ES_TEST_PORT; if one already answers there it is reused and left running,
otherwise one is started for the session and stopped at its end.
Every test gets its own ES index prefix, wiped afterwards.

Tests that stop and start a node get one of their own (`es_private_cluster`):
the node on ES_TEST_PORT serves every other test, of this session and of any
other session running on the machine, and their requests would fail while it
is down.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from fpc import esdb, esnode

ES_TEST_PORT = 9250
# HTTP ports of private nodes (transport: +100), one per concurrent session
PRIVATE_PORTS = range(9260, 9290)


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
    # Not fresh: a node another session is starting here is waited for, not
    # killed and wiped.
    esnode.start(cluster)
    try:
        yield cluster
    finally:
        esnode.stop(cluster)


@pytest.fixture
def es_private_cluster(es_private_node: esnode.Cluster) -> esnode.Cluster:
    """A node of this test session alone, which a test may stop and start;
    running when the test begins, whatever the test before it left."""
    esnode.start(es_private_node)  # returns at once if it runs
    return es_private_node


@pytest.fixture(scope="session")
def es_private_node() -> Iterator[esnode.Cluster]:
    """Started fresh on the first free port of PRIVATE_PORTS; stopped and its
    directory removed at the end of the session."""
    home = esnode.default_home()
    home.mkdir(parents=True, exist_ok=True)
    for port in PRIVATE_PORTS:
        # The lock marks the port as taken and goes away with its holder, so
        # a node left by a killed session is stopped by the next one here.
        with open(home / f"private-{port}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            cluster = esnode.Cluster(home, 1, port)
            esnode.stop(cluster)
            if not (port_free(port) and port_free(port + esnode.TRANSPORT_OFFSET)):
                continue
            esnode.start(cluster, fresh=True)
            try:
                yield cluster
            finally:
                esnode.stop(cluster)
                shutil.rmtree(cluster.dir, ignore_errors=True)
            return
    first, last = PRIVATE_PORTS.start, PRIVATE_PORTS.stop - 1
    pytest.fail(
        f"no free port for a private Elasticsearch node in {first}-{last}; "
        "see what listens there with 'ss -ltnp'"
    )


def port_free(port: int) -> bool:
    """Whether Elasticsearch could listen on `port` (it binds with SO_REUSEADDR,
    so a port whose last connections are in TIME_WAIT counts as free)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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
    prefix = new_prefix()
    yield prefix
    esdb.wipe(es_client, prefix)


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


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
