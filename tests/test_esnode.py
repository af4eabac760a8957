"""fpc-es: node layout, config files, and status of the running test node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fpc import esnode
from fpc.errors import StoreError


def test_node_config_three_nodes_seed_each_other(tmp_path: Path) -> None:
    cluster = esnode.Cluster(tmp_path, nodes=3, http_port=9400)
    yml = esnode.node_config(cluster, 2)
    assert "http.port: 9402" in yml and "transport.port: 9502" in yml
    seeds = '["127.0.0.1:9500", "127.0.0.1:9501", "127.0.0.1:9502"]'
    assert f"discovery.seed_hosts: {seeds}" in yml
    assert 'cluster.initial_master_nodes: ["node-0", "node-1", "node-2"]' in yml
    assert "single-node" not in yml
    assert f"path.data: {tmp_path}/cluster-9400/node-2/data" in yml


def test_node_config_single_node_skips_discovery(tmp_path: Path) -> None:
    yml = esnode.node_config(esnode.Cluster(tmp_path), 0)
    assert "discovery.type: single-node" in yml and "seed_hosts" not in yml


@pytest.mark.skipif(os.geteuid() != 0, reason="the check only runs as root")
def test_home_under_root_is_refused_with_hint() -> None:
    with pytest.raises(StoreError, match="not searchable.*pass --home"):
        esnode.check_traversable(Path("/root/.cache/fpc/es/cluster-9200"))
    assert esnode.default_home() == Path("/var/cache/fpc/es")


@pytest.mark.es
def test_status_reports_running_node_and_its_health(es_private_cluster, capsys) -> None:
    # Not the shared node: another session may have started that one from
    # another home, and ES indices other tests make turn it yellow for a while.
    cluster = es_private_cluster
    port = cluster.http_port
    argv = ["status", "--home", str(cluster.home), "--http-port", str(port)]
    assert esnode.main(argv) == 0
    out = capsys.readouterr().out
    pid = int(cluster.pid_file(0).read_text())
    assert f"node-0 http={port} running pid={pid}\n" in out
    assert f"cluster=fpc-{port} status=green nodes=1 url={cluster.url}\n" in out


def test_status_of_stopped_cluster_says_unreachable(tmp_path: Path, capsys) -> None:
    assert esnode.main(["status", "--home", str(tmp_path), "--http-port", "9"]) == 0
    out = capsys.readouterr().out
    assert "node-0 http=9 stopped" in out and "unreachable" in out
