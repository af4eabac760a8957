"""The interface every session store fills: SQLite (default) or Elasticsearch.

In: SPI records (dicts in the ECS-shaped layout of `fpc.spi`) from the session
table, and `PcapFile` rows from the PCAP writer. Out: answers to session
queries for `fpc-pcapd` and the command-line tools.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import orjson


def encode_record(record: dict[str, Any]) -> str:
    """Compact JSON of an SPI record, as the stores and JSON-lines files keep it.

    orjson is several times faster than the standard library here; what it
    refuses (an integer past 64 bits, a non-string key) goes the slow way.
    """
    try:
        return orjson.dumps(record).decode()
    except TypeError:
        return json.dumps(record, separators=(",", ":"))


@dataclass
class PcapFile:
    """One PCAP file in the registry; `file_num` is unique per node."""

    node: str
    file_num: int
    path: str
    linktype: int
    precision: int  # 6 (microseconds) or 9 (nanoseconds)
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    size: int = 0  # bytes flushed to disk
    packets: int = 0
    closed: bool = False


@dataclass
class SessionQuery:
    """A search over SPI records; every set field must match (AND)."""

    ip: str | None = None  # either side
    port: int | None = None  # either side
    protocol: str | None = None  # transport ("tcp") or app protocol ("http")
    start_ns: int | None = None  # session overlaps [start_ns, end_ns]
    end_ns: int | None = None
    node: str | None = None
    limit: int = 100


class Store(ABC):
    """Persists SPI records and the PCAP file registry."""

    @abstractmethod
    def next_file_num(self, node: str) -> int:
        """A file number for `node` greater than every one handed out before."""

    @abstractmethod
    def save_file(self, pcap_file: PcapFile) -> None:
        """Insert or update one registry row (keyed by node and file_num)."""

    @abstractmethod
    def get_file(self, node: str, file_num: int) -> PcapFile | None: ...

    @abstractmethod
    def save_sessions(self, records: list[dict[str, Any]]) -> None:
        """Store SPI records; a record with a known `event.id` replaces it."""

    @abstractmethod
    def get_session(self, session_id: str) -> dict[str, Any] | None: ...

    def get_segments(self, session_id: str) -> list[dict[str, Any]]:
        """Every SPI record of a session (all its segments), oldest first."""
        record = self.get_session(session_id)
        return [record] if record is not None else []

    @abstractmethod
    def search_sessions(self, query: SessionQuery) -> list[dict[str, Any]]:
        """Records matching `query`, oldest first, at most `query.limit`."""

    def register_node(self, node: str, **details: str) -> None:  # noqa: B027
        """Record facts about a node (its fpc-pcapd URL, ...); shared stores only."""

    def get_node(self, node: str) -> dict[str, Any] | None:
        """The registry row of `node`, or None (always None for a one-node store)."""
        return None

    def flush(self) -> None:  # noqa: B027 - optional for backends that buffer
        """Make everything saved so far visible to readers."""

    def close(self) -> None:
        """Flush and release the backend."""
        self.flush()
