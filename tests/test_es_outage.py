"""The PCAP file registry while Elasticsearch is down: the writer keeps
rotating, file numbers stay unique, and the rows reach the cluster later."""

from __future__ import annotations

import pytest
from esnode_fixture import new_prefix
from test_es_indexer import fast_config, fpc_es

from fpc.store.base import PcapFile
from fpc.store.es import EsStore
from fpc.store.fileseq import LocalFileSeq

pytestmark = pytest.mark.es


def row(node: str, num: int) -> PcapFile:
    return PcapFile(node, num, f"/pcap/{node}-{num:06d}.pcap", 1, 6, 1, 2, 24, 0)


def test_local_file_seq_never_goes_back(tmp_path):
    seq = LocalFileSeq(str(tmp_path), "n1")
    assert [seq.next(lambda: None) for _ in range(3)] == [1, 2, 3]
    assert seq.next(lambda: 2) == 4  # a cluster counter that lags is overtaken
    assert seq.next(lambda: 10) == 10  # one that is ahead is followed
    assert LocalFileSeq(str(tmp_path), "n1").next(lambda: None) == 11


def test_es_store_registry_survives_a_dead_cluster(es_private_cluster, es_spool):
    cluster = es_private_cluster  # stopping the shared node fails other tests
    store = EsStore(cluster.url, prefix=new_prefix(), indexer=fast_config(es_spool))
    before = [store.next_file_num("n1") for _ in range(2)]
    for num in before:
        store.save_file(row("n1", num))
    fpc_es(cluster, "stop")
    try:
        during = [store.next_file_num("n1") for _ in range(3)]
        for num in during:
            store.save_file(row("n1", num))  # spooled, not lost
    finally:
        fpc_es(cluster, "start")
    assert store.indexer.flush(120)
    after = store.next_file_num("n1")
    numbers = before + during + [after]
    assert numbers == sorted(set(numbers))
    assert all(store.get_file("n1", n) is not None for n in before + during)
    store.close()
