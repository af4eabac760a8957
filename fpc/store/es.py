"""Elasticsearch session store: SPI records and the PCAP file registry in a cluster.

In: SPI records from the session table (through `fpc.indexer.Indexer`, on its
own thread) and `PcapFile` rows from the PCAP writer. Out: answers to session
queries for `fpc-pcapd` and the tools. The ES layout (ES index names,
templates) lives in `fpc.esdb`. Queries run on the caller's thread.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import (
    ApiError,
    ConflictError,
    Elasticsearch,
    NotFoundError,
    TransportError,
)

from fpc import esdb
from fpc.config import EsConfig
from fpc.errors import StoreError
from fpc.indexer import Indexer, IndexerConfig
from fpc.store.base import PcapFile, SessionQuery, Store
from fpc.store.fileseq import LocalFileSeq

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0
FILE_CALL_TIMEOUT_S = 3.0
SEQUENCE_ATTEMPTS = 50
FLUSH_TIMEOUT_S = 60.0


def connect(cfg: EsConfig, timeout_s: float = REQUEST_TIMEOUT_S) -> Elasticsearch:
    """A client for `cfg.url` with its auth; no request is sent yet."""
    options: dict[str, Any] = {"request_timeout": timeout_s, "max_retries": 0}
    if cfg.username:
        options["basic_auth"] = (cfg.username, cfg.password)
    if cfg.api_key:
        options["api_key"] = cfg.api_key
    if cfg.ca_file:
        options["ca_certs"] = cfg.ca_file
    try:
        return Elasticsearch(cfg.url, **options)
    except (ValueError, TypeError) as exc:
        raise StoreError(
            f"elasticsearch url {cfg.url!r}: {exc}; "
            "give --es like http://127.0.0.1:9200"
        ) from exc


@contextmanager
def translate_errors(url: str, what: str) -> Iterator[None]:
    """Turn client exceptions into a StoreError naming the URL and a fix."""
    try:
        yield
    except ApiError as exc:
        raise StoreError(
            f"elasticsearch {url}: {what} failed with status {exc.meta.status}: "
            f"{esdb.reason_of(exc)}; check the cluster log and `fpc-db info`"
        ) from exc
    except TransportError as exc:
        raise StoreError(
            f"elasticsearch {url}: {what} failed, cluster unreachable ({exc}); "
            "check that it runs (fpc-es status) and the URL and auth settings"
        ) from exc


class EsStore(Store):
    """Store backed by an Elasticsearch cluster (see fpc.esdb for the layout)."""

    def __init__(
        self,
        url: str | EsConfig,
        prefix: str = "fpc",
        rotation: str = "daily",
        spool_dir: str | None = None,
        indexer: IndexerConfig | None = None,
        seq_dir: str | None = None,
        **auth: str,
    ) -> None:
        if isinstance(url, EsConfig):
            cfg = url
        else:
            cfg = EsConfig(url=url, prefix=prefix, rotation=rotation, **auth)
        if cfg.rotation not in esdb.ROTATION_FORMATS:
            raise StoreError(
                f"es rotation {cfg.rotation!r} is unknown; choose one "
                f"of {', '.join(esdb.ROTATION_FORMATS)}"
            )
        self.cfg = cfg
        self.es = connect(cfg)
        with translate_errors(cfg.url, "installing index templates"):
            esdb.ensure_templates(self.es, cfg.prefix)
        icfg = indexer or IndexerConfig(spool_dir=spool_dir or "fpc-data/es-spool")
        self.indexer = Indexer(connect(cfg), icfg)
        self.indexer.start()
        # The node's file-number high-water mark: one per node, even when
        # several processes of the node each have a spool of their own.
        self.seq_dir = seq_dir or icfg.spool_dir
        # Registry calls run on the writer's thread: fail fast, never stall it.
        self._files_client = self.es.options(
            request_timeout=FILE_CALL_TIMEOUT_S, max_retries=0
        )

    @property
    def prefix(self) -> str:
        return self.cfg.prefix

    def index_for(self, record: dict[str, Any]) -> str:
        """ES index of a record: the rotation period of its @timestamp."""
        hour = datetime.strptime(record["@timestamp"][:13], "%Y-%m-%dT%H")
        return esdb.sessions_index(self.prefix, self.cfg.rotation, hour)

    def save_sessions(self, records: list[dict[str, Any]]) -> None:
        """Hand records to the indexer; they are searchable within seconds."""
        self.indexer.submit([(self.index_for(r), r["event"]["id"], r) for r in records])

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        hits = self._search({"ids": {"values": [session_id]}}, 1)
        return hits[0] if hits else None

    def get_segments(self, session_id: str) -> list[dict[str, Any]]:
        # TODO: a session with more than MAX_SEGMENTS segments is served in part;
        # paging through search_after would lift the bound.
        return self._search({"term": {"fpc.session": session_id}}, MAX_SEGMENTS)

    def search_sessions(self, query: SessionQuery) -> list[dict[str, Any]]:
        return self._search(build_query(query), query.limit)

    def _search(self, query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        alias = esdb.sessions_alias(self.prefix)
        with translate_errors(self.cfg.url, f"search in {alias}"):
            resp = self.es.search(
                index=alias,
                query=query,
                size=limit,
                ignore_unavailable=True,
                sort=[{"event.start": "asc"}, {"event.id": "asc"}],
            )
        return [h["_source"] for h in resp["hits"]["hits"]]

    def next_file_num(self, node: str) -> int:
        """The cluster's next number for `node`, never below the local record.

        While the cluster is unreachable the local sequence alone answers, so
        the writer keeps rotating and no packet waits for Elasticsearch.
        """
        return LocalFileSeq(self.seq_dir, node).next(
            lambda: self._cluster_file_num(node)
        )

    def _cluster_file_num(self, node: str) -> int | None:
        try:
            return self._bump_sequence(node)
        except StoreError as exc:
            logger.warning("file number from the local sequence node=%s: %s", node, exc)
            return None

    def _bump_sequence(self, node: str) -> int:
        """Bump the node's counter document with optimistic concurrency."""
        index = f"{self.prefix}-sequence"
        with translate_errors(self.cfg.url, f"file number for node {node}"):
            for _ in range(SEQUENCE_ATTEMPTS):
                num = self._try_bump(index, node)
                if num is not None:
                    return num
        raise StoreError(
            f"elasticsearch {self.cfg.url}: file number for node {node} "
            f"lost {SEQUENCE_ATTEMPTS} races in {index}; is another "
            "process with the same node name running?"
        )

    def _try_bump(self, index: str, node: str) -> int | None:
        try:
            doc = self._files_client.get(index=index, id=node)
        except NotFoundError:
            num = self._max_file_num(node) + 1  # the registry may outlive the counter
            try:
                self._files_client.create(
                    index=index,
                    id=node,
                    document={"node": node, "file_num": num},
                )
                return num
            except ConflictError:
                return None
        num = int(doc["_source"]["file_num"]) + 1
        try:
            self._files_client.index(
                index=index,
                id=node,
                if_seq_no=doc["_seq_no"],
                if_primary_term=doc["_primary_term"],
                document={"node": node, "file_num": num},
            )
        except ConflictError:
            return None
        return num

    def _max_file_num(self, node: str) -> int:
        """Highest registered file number of `node` (GET is real-time, search not)."""
        self._files_client.indices.refresh(
            index=f"{self.prefix}-files", ignore_unavailable=True
        )
        resp = self._files_client.search(
            index=f"{self.prefix}-files",
            size=0,
            query={"term": {"node": node}},
            aggs={"m": {"max": {"field": "file_num"}}},
            ignore_unavailable=True,
        )
        value = resp.get("aggregations", {}).get("m", {}).get("value")
        return int(value) if value is not None else 0

    # TODO: while the cluster is down each file call first waits up to
    # FILE_CALL_TIMEOUT_S on the writer's thread; a circuit breaker that skips
    # the cluster for a while after a failure would remove that wait.
    def save_file(self, pcap_file: PcapFile) -> None:
        """Index the registry row now; when the cluster does not answer, through
        the indexer, which spools it and sends it once the cluster is back."""
        index = f"{self.prefix}-files"
        doc_id = f"{pcap_file.node}-{pcap_file.file_num}"
        doc = asdict(pcap_file)
        try:
            with translate_errors(self.cfg.url, f"saving PCAP file {doc_id}"):
                self._files_client.index(index=index, id=doc_id, document=doc)
        except StoreError as exc:
            logger.warning("pcap registry row spooled file=%s: %s", doc_id, exc)
            self.indexer.submit([(index, doc_id, doc)])

    def get_file(self, node: str, file_num: int) -> PcapFile | None:
        index = f"{self.prefix}-files"
        with translate_errors(self.cfg.url, f"reading {index}"):
            try:
                doc = self.es.get(index=index, id=f"{node}-{file_num}")
            except NotFoundError:
                return None
        return PcapFile(**doc["_source"])

    def register_node(self, node: str, **details: str) -> None:
        """Insert or refresh the node's row in `<prefix>-nodes`."""
        now = datetime.now(UTC).isoformat()
        doc = {"name": node, "last_seen": now, **details}
        with translate_errors(self.cfg.url, f"registering node {node}"):
            self.es.update(
                index=f"{self.prefix}-nodes",
                id=node,
                doc=doc,
                upsert={**doc, "started": now},
            )

    def get_node(self, node: str) -> dict[str, Any] | None:
        """The node's row in `<prefix>-nodes`, or None."""
        with translate_errors(self.cfg.url, f"looking up node {node}"):
            try:
                doc = self.es.get(index=f"{self.prefix}-nodes", id=node)
            except NotFoundError:
                return None
        return dict(doc["_source"])

    def flush(self) -> None:
        """Wait for the indexer to send everything, then refresh the ES indices."""
        if not self.indexer.flush(FLUSH_TIMEOUT_S):
            raise StoreError(
                f"elasticsearch {self.cfg.url}: {self.indexer.pending()} SPI records "
                f"still queued or spooled after {FLUSH_TIMEOUT_S:.0f}s; they are "
                f"kept in {self.indexer.cfg.spool_dir} and sent once the cluster is up"
            )
        with translate_errors(self.cfg.url, "refresh"):
            self.es.indices.refresh(index=f"{self.prefix}-*", ignore_unavailable=True)

    def close(self) -> None:
        """Send what is queued, or leave it in the spool if the cluster is down."""
        sent = self.indexer.flush(FLUSH_TIMEOUT_S, while_unavailable=False)
        self.indexer.stop()
        left = self.indexer.pending()
        if sent and not left:
            with translate_errors(self.cfg.url, "refresh"):
                self.es.indices.refresh(
                    index=f"{self.prefix}-*", ignore_unavailable=True
                )
        else:
            logger.warning(
                "es store closed with records in the spool records=%d dir=%s; "
                "they are sent when fpc next starts with this spool",
                left,
                self.indexer.cfg.spool_dir,
            )
        self.es.close()


MAX_SEGMENTS = 10_000  # records of one session fetched at most


def build_query(q: SessionQuery) -> dict[str, Any]:
    """Bool query for a SessionQuery (every set field must match)."""
    must: list[dict[str, Any]] = []
    if q.ip is not None:
        ip = str(ipaddress.ip_address(q.ip))
        must.append(any_of(("source.ip", "destination.ip", "related.ip"), ip))
    if q.port is not None:
        must.append(any_of(("source.port", "destination.port"), int(q.port)))
    if q.protocol is not None:
        must.append({"term": {"fpc.protocols": q.protocol.lower()}})
    if q.start_ns is not None:
        must.append({"range": {"event.end": {"gte": ns_iso(q.start_ns)}}})
    if q.end_ns is not None:
        must.append({"range": {"event.start": {"lte": ns_iso(q.end_ns)}}})
    if q.node is not None:
        must.append({"term": {"observer.name": q.node}})
    return {"bool": {"filter": must}} if must else {"match_all": {}}


def any_of(names: tuple[str, ...], value: object) -> dict[str, Any]:
    return {
        "bool": {
            "should": [{"term": {name: value}} for name in names],
            "minimum_should_match": 1,
        }
    }


def ns_iso(ts_ns: int) -> str:
    sec, frac = divmod(ts_ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def spool_dir_for(data_dir: str) -> str:
    """Where an EsStore for `data_dir` keeps its spool and dead-letter file."""
    return str(Path(data_dir) / "es-spool")
