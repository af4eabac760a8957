"""Stage 5 of the pipeline: where SPI records and the PCAP file registry live.

`open_store` picks the backend: Elasticsearch when a URL is given, else the
embedded SQLite database `fpc.sqlite` in the data directory.
"""

from __future__ import annotations

import os

from fpc.config import EsConfig
from fpc.store.base import PcapFile, SessionQuery, Store

__all__ = ["PcapFile", "SessionQuery", "Store", "open_store"]

SQLITE_NAME = "fpc.sqlite"


def open_store(
    data_dir: str, es: EsConfig | str | None = None, process: str | None = None
) -> Store:
    """The store for a data directory, or the Elasticsearch cluster if given.

    `process` names one of several processes of the node (workers): each then
    spools to a directory of its own, since a spool has one writer.
    """
    if isinstance(es, str):
        es = EsConfig(url=es)
    if es is not None and es.url:
        from fpc.store.es import EsStore, spool_dir_for

        root = spool_dir_for(data_dir)
        spool = os.path.join(root, process) if process else root
        return EsStore(es, spool_dir=spool, seq_dir=root)
    from fpc.store.sqlite import SqliteStore

    os.makedirs(data_dir, exist_ok=True)
    return SqliteStore(os.path.join(data_dir, SQLITE_NAME))
