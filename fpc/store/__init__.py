"""Stage 5 of the pipeline: where SPI records and the PCAP file registry live.

`open_store` picks the backend: Elasticsearch when a URL is given, else the
embedded SQLite database `fpc.sqlite` in the data directory.
"""

from __future__ import annotations

import os

from fpc.store.base import PcapFile, SessionQuery, Store

__all__ = ["PcapFile", "SessionQuery", "Store", "open_store"]

SQLITE_NAME = "fpc.sqlite"


def open_store(data_dir: str, es_url: str | None = None, **es_options: object) -> Store:
    """The store for a data directory, or the cluster at `es_url` if given."""
    if es_url:
        from fpc.store.es import EsStore

        return EsStore(es_url, **es_options)  # type: ignore[arg-type]
    from fpc.store.sqlite import SqliteStore

    os.makedirs(data_dir, exist_ok=True)
    return SqliteStore(os.path.join(data_dir, SQLITE_NAME))
