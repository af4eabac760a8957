"""`fpc-pcapd` serves SPI records and the PCAP of sessions or queries over HTTP.

In: HTTP requests; SPI records and PCAP file registry rows from the store
(`fpc.store.open_store`); packets from the PCAP files under the PCAP directory.
Out: JSON records, and pcap (or pcapng when link types or precisions differ)
streams of a session's packets. aiohttp runs on the uvloop event loop; store
calls run on one dedicated thread, file reads on a small thread pool.

No path from a request is ever used: session ids must match `ID_PATTERN`, and a
registry path is served only when it resolves to a file under the PCAP dir.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib
import ipaddress
import json
import logging
import os
import re
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
from aiohttp import web
from multidict import MultiMapping

from fpc.config import EsConfig, default_node, es_url_arg
from fpc.errors import (
    FpcError,
    PacketsNotWritten,
    PcapUnavailable,
    SessionNotFound,
    StoreError,
)
from fpc.fields import get_path
from fpc.forward import SeveralNodes, relay, relay_target, remote_node
from fpc.pcapfile import (
    FileKey,
    PacketList,
    PacketPlan,
    PcapngOutput,
    PcapOutput,
    make_output,
)
from fpc.store import SQLITE_NAME
from fpc.store.base import PcapFile, SessionQuery, Store

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}\Z")
NODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
PROTOCOL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}\Z")
# [0-9], not \d or str.isdigit(): those take any script's digits, and '²'.
DIGITS_PATTERN = re.compile(r"[0-9]{1,18}\Z")
EPOCH_PATTERN = re.compile(r"[0-9]{1,11}(\.[0-9]+)?\Z")
# The fraction of the seconds: after the last 'T' or ' ', past the digits and colons.
ISO_FRACTION = re.compile(r"(.+[T ][0-9:]+)[.,]([0-9]+)(.*)\Z")
QUERY_PARAMS = ("ip", "port", "protocol", "start", "end", "node", "limit")
DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
CHUNK_PACKETS = 256  # packets read and sent per step of a PCAP stream
MAX_TS_NS = (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_T = TypeVar("_T")

HINT_404 = "search with GET /api/sessions?ip=...&start=... to find session ids"
HINT_410 = (
    "the PCAP file was deleted to free disk space (aged out) or damaged; "
    "the SPI record stays searchable, but its packets are gone"
)
HINT_410_UNWRITTEN = (
    "the capture could not write these packets (the PCAP disk was full or a "
    "write failed: see pcap_write_failed in the fpc-capture log); only the SPI "
    "record exists"
)
HINT_503 = "check that the session store (SQLite file or Elasticsearch) is up"
HINT_ROUTES = (
    "endpoints: GET /api/sessions, /api/sessions.pcap, /api/session/<id>, "
    "/api/session/<id>.pcap"
)


class BadQuery(FpcError):
    """A request parameter that is missing, malformed or out of range (HTTP 400)."""

    def __init__(self, param: str, problem: str, hint: str) -> None:
        self.hint = hint
        super().__init__(f"parameter '{param}' {problem}")


@dataclass
class Service:
    """What every handler needs: the store, the PCAP dir and the thread pools."""

    store: Store
    pcap_dir: str
    node: str = ""  # sessions of other nodes are relayed to their fpc-pcapd
    store_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="fpc-store")
    )
    io_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="fpc-io")
    )

    def __post_init__(self) -> None:
        self.pcap_dir = os.path.realpath(self.pcap_dir)

    async def in_store(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.store_pool, fn, *args)

    async def in_io(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.io_pool, fn, *args)

    def shutdown(self) -> None:
        self.io_pool.shutdown(wait=True)
        self.store_pool.shutdown(wait=True)


SERVICE = web.AppKey("service", Service)


# Query parsing -----------------------------------------------------------------


def parse_query(params: MultiMapping[str]) -> SessionQuery:
    """A SessionQuery from the query string; BadQuery names the bad parameter."""
    for name in params:
        if name not in QUERY_PARAMS:
            raise BadQuery(name, "is unknown", "use: " + ", ".join(QUERY_PARAMS))
        if len(params.getall(name)) > 1:
            raise BadQuery(name, "is given more than once", "give it once")
    q = SessionQuery(limit=_parse_limit(params.get("limit")))
    if "ip" in params:
        q.ip = _parse_ip(params["ip"])
    if "port" in params:
        q.port = _parse_port(params["port"])
    if "protocol" in params:
        q.protocol = _parse_protocol(params["protocol"])
    if "node" in params:
        q.node = _parse_node(params["node"])
    _parse_window(params, q)
    return q


def is_number(value: str) -> bool:
    """Whether `value` is a whole number in ASCII digits that int() can take."""
    return DIGITS_PATTERN.match(value) is not None


def _parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not is_number(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise BadQuery(
            "limit", f"= {value[:40]!r} is out of range", f"use 1 to {MAX_LIMIT}"
        )
    return int(value)


def _parse_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        hint = "give one IPv4 or IPv6 address, e.g. ip=10.0.0.1 or ip=2001:db8::1"
        raise BadQuery("ip", f"= {value[:60]!r} is not an IP address", hint) from None


def _parse_port(value: str) -> int:
    if not is_number(value) or int(value) > 65535:
        raise BadQuery("port", f"= {value[:40]!r} is not a port", "use 0 to 65535")
    return int(value)


def _parse_protocol(value: str) -> str:
    if not PROTOCOL_PATTERN.match(value.lower()):
        hint = "use a protocol name such as tcp, udp, dns or http"
        raise BadQuery("protocol", f"= {value[:40]!r} is not a protocol name", hint)
    return value.lower()


def _parse_node(value: str) -> str:
    if not NODE_PATTERN.match(value):
        hint = "use a node name: letters, digits, '.', '_' or '-'"
        raise BadQuery("node", f"= {value[:40]!r} is not a node name", hint)
    return value


def _parse_window(params: Mapping[str, str], q: SessionQuery) -> None:
    if "start" in params:
        q.start_ns = parse_time("start", params["start"])
    if "end" in params:
        q.end_ns = parse_time("end", params["end"])
    if q.start_ns is not None and q.end_ns is not None and q.start_ns > q.end_ns:
        raise BadQuery("start", "is after 'end'", "give start <= end")


def parse_time(name: str, value: str) -> int:
    """Nanoseconds since the epoch from epoch seconds or an ISO 8601 time."""
    hint = "use epoch seconds (1700000000.5) or ISO 8601 (2024-01-31T12:00:00Z)"
    ns: int | None
    if EPOCH_PATTERN.match(value):
        sec, _, frac = value.partition(".")
        ns = int(sec) * 1_000_000_000 + fraction_ns(frac)
    else:
        ns = _parse_iso(value)
    if ns is None:
        raise BadQuery(name, f"= {value[:40]!r} is not a time", hint)
    if not 0 <= ns <= MAX_TS_NS:
        raise BadQuery(name, f"= {value[:40]!r} is out of range", hint)
    return ns


def _parse_iso(value: str) -> int | None:
    """ISO 8601 to nanoseconds (UTC unless an offset is given); None if invalid."""
    frac_ns = 0
    m = ISO_FRACTION.match(value)
    if m:  # datetime keeps microseconds only: take the fraction apart
        value = m.group(1) + m.group(3)
        frac_ns = fraction_ns(m.group(2))
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # In microseconds: a fraction the pattern missed stays in dt.
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1_000 + frac_ns


def fraction_ns(digits: str) -> int:
    """Nanoseconds of a decimal fraction of a second; digits past 9 are cut off."""
    return int(digits[:9].ljust(9, "0"))


def check_session_id(session_id: str) -> str:
    if not ID_PATTERN.match(session_id):
        hint = "a session id has letters, digits, '.', '_', ':' and '-' only"
        raise BadQuery("id", f"{session_id[:80]!r} is not a session id", hint)
    return session_id


# Packet plans ------------------------------------------------------------------


def packet_list(records: list[dict[str, Any]]) -> PacketList:
    """The packet positions of SPI records, record after record, in capture order.

    Packets the capture could not write are left out (see `_written_packets`).
    """
    listed = [_record_packets(r) for r in records]
    parts = [_written_packets(*part) for part in listed]
    unwritten = sum(len(p[1]) for p in listed) - sum(len(p[1]) for p in parts)
    if unwritten:
        logger.info(
            "packets skipped, not written at capture unwritten=%d records=%d",
            unwritten, len(records),
        )  # fmt: skip
    keys = sorted({(node, int(f)) for node, files, _, _ in parts for f in set(files)})
    index = {key: i for i, key in enumerate(keys)}
    file_idx = [
        np.array([index[(node, int(f))] for f in files], dtype=np.int64)
        for node, files, _, _ in parts
    ]
    return PacketList(
        keys,
        _concat(file_idx),
        _concat([np.asarray(pos, dtype=np.int64) for _, _, pos, _ in parts]),
        _concat([np.asarray(lens, dtype=np.int64) for _, _, _, lens in parts]),
    )


def _concat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)


def check_written(records: list[dict[str, Any]], sid: str) -> None:
    """PacketsNotWritten when the records list packets but none was written."""
    files = [f for r in records for f in _record_packets(r)[1]]
    if files and max(files) < 0:
        raise PacketsNotWritten(
            f"none of the {len(files)} packets of session {sid} was written at "
            "capture time (the PCAP disk was full or a write failed)"
        )


def _written_packets(
    node: str, files: list[Any], positions: list[Any], lens: list[Any]
) -> tuple[str, list[Any], list[Any], list[Any]]:
    """The packets of a record less those with a negative file number.

    The writer gives file number -1 to packets it could not write (disk full,
    a write error): they are in the record but in no file.
    """
    keep = [i for i, f in enumerate(files) if f >= 0]
    if len(keep) == len(files):
        return node, files, positions, lens
    return (
        node,
        [files[i] for i in keep],
        [positions[i] for i in keep],
        [lens[i] for i in keep],
    )


def _record_packets(
    record: dict[str, Any],
) -> tuple[str, list[Any], list[Any], list[Any]]:
    """(node, files, positions, lengths) of one SPI record; lengths -1 if absent."""
    node = get_path(record, "observer.name")
    files = _list_field(record, "fpc.packet.file")
    positions = _list_field(record, "fpc.packet.pos")
    lens = _list_field(record, "fpc.packet.len") or [-1] * len(positions)
    if not isinstance(node, str) or not len(files) == len(positions) == len(lens):
        raise PcapUnavailable(
            f"SPI record {get_path(record, 'event.id')} has no node or an "
            "inconsistent packet list (fpc.packet.file, .pos and .len differ in "
            "length); re-index the session"
        )
    return node, files, positions, lens


def _list_field(record: dict[str, Any], name: str) -> list[Any]:
    value = get_path(record, name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise PcapUnavailable(
            f"SPI record {get_path(record, 'event.id')} field {name} is not a "
            "list of integers; re-index the session"
        )
    return value


def lookup_files(store: Store, keys: list[FileKey]) -> dict[FileKey, PcapFile | None]:
    """Registry rows of the files; runs on the store thread."""
    return {key: store.get_file(*key) for key in keys}


def resolve_file(
    pcap_dir: str, rows: dict[FileKey, PcapFile | None], key: FileKey
) -> tuple[str, int | None]:
    """(path, bytes to trust) of a file, only if it resolves to a file under pcap_dir.

    Of a file still being written, only the part flushed (registry size) counts.
    """
    node, file_num = key
    row = rows.get(key)
    if row is None:
        # Sessions of a node with a registered fpc-pcapd were relayed before
        # this point (fpc.forward); a row missing here means the file is gone.
        raise PcapUnavailable(
            f"PCAP file {file_num} of node {node} is not in the file registry; "
            "it aged out, or it belongs to another node whose fpc-pcapd is not "
            "registered (start it there with --es)"
        )
    real = os.path.realpath(row.path)
    if os.path.commonpath([real, pcap_dir]) != pcap_dir or real == pcap_dir:
        logger.error(
            "pcap path refused node=%s file_num=%d path=%s pcap_dir=%s",
            node, file_num, row.path, pcap_dir,
        )  # fmt: skip
        raise PcapUnavailable(
            f"PCAP file {file_num} of node {node} lies outside the PCAP directory "
            "of this server; start fpc-pcapd with --pcap-dir set to the directory "
            "the capture writes to"
        )
    return real, None if row.closed else row.size


# Handlers ----------------------------------------------------------------------


async def handle_sessions(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    query = parse_query(request.query)
    records = await service.in_store(service.store.search_sessions, query)
    body = await service.in_io(_dumps, records)
    return web.Response(body=body, content_type="application/json")


async def handle_session(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    raw_id = request.match_info["sid"]
    want_pcap = raw_id.endswith(".pcap")
    sid = check_session_id(raw_id.removesuffix(".pcap") if want_pcap else raw_id)
    record = await service.in_store(service.store.get_session, sid)
    if record is None:
        raise SessionNotFound(f"no session with id {sid}")
    if not want_pcap:
        body = await service.in_io(_dumps, record)
        return web.Response(body=body, content_type="application/json")
    # A session id names every segment of a long session; a segment's own id
    # (`<session id>.<n>`) names that segment alone.
    records = await service.in_store(service.store.get_segments, sid) or [record]
    relayed = await relay_if_remote(request, records)
    if relayed is not None:
        return relayed
    packets = await service.in_io(packet_list, records)
    if not len(packets):
        check_written(records, sid)
    return await stream_pcap(request, packets, sid, by_time=False)


async def handle_sessions_pcap(request: web.Request) -> web.StreamResponse:
    service = request.app[SERVICE]
    query = parse_query(request.query)
    records = await service.in_store(service.store.search_sessions, query)
    try:
        relayed = await relay_if_remote(request, records)
    except SeveralNodes as exc:
        hint = "add node=<name> to fetch the packets of one node at a time"
        raise BadQuery("node", f"is needed: {exc}", hint) from exc
    if relayed is not None:
        return relayed
    packets = await service.in_io(lambda: packet_list(records).unique())
    return await stream_pcap(request, packets, "sessions", by_time=True)


async def relay_if_remote(
    request: web.Request, records: list[dict[str, Any]]
) -> web.StreamResponse | None:
    """Relay the request to the node holding `records`; None when they are ours."""
    service = request.app[SERVICE]
    if not service.node:
        return None
    node = remote_node(records, service.node)
    if node is None:
        return None
    row = await service.in_store(service.store.get_node, node)
    base = relay_target(row)
    if base is None:  # no fpc-pcapd registered there: try the local files
        return None
    return await relay(request, base, service.node)


async def stream_pcap(
    request: web.Request, packets: PacketList, name: str, by_time: bool
) -> web.StreamResponse:
    """Check every packet, then stream them as pcap or pcapng in chunks."""
    service = request.app[SERVICE]
    rows = await service.in_store(lookup_files, service.store, packets.keys)
    resolve = functools.partial(resolve_file, service.pcap_dir, rows)
    plan = await service.in_io(PacketPlan(packets, resolve).build, by_time)
    try:
        out = make_output(plan.kinds())
        disposition = f'attachment; filename="{name}.{out.suffix}"'
        resp = web.StreamResponse(headers={"Content-Disposition": disposition})
        resp.content_type = out.content_type
        await resp.prepare(request)
        await _send_plan(request, resp, plan, out)
        return resp
    finally:
        plan.close()


async def _send_plan(
    request: web.Request,
    resp: web.StreamResponse,
    plan: PacketPlan,
    out: PcapOutput | PcapngOutput,
) -> None:
    """Write the plan in chunks; on a failure past the headers, cut the connection."""
    service = request.app[SERVICE]
    sent = 0
    try:
        await resp.write(out.header())
        for sent in range(0, len(plan.packets), CHUNK_PACKETS):
            chunk = await service.in_io(plan.encode, out, sent, sent + CHUNK_PACKETS)
            await resp.write(chunk)
        await resp.write_eof()
    except (FpcError, OSError) as exc:
        # The status line is already sent: aborting tells the client the
        # stream is incomplete, where a clean end would pass for a whole file.
        logger.error(
            "pcap stream cut path=%s packets_sent=%d error=%s",
            request.rel_url.raw_path[:200], sent, exc,
        )  # fmt: skip
        if request.transport is not None:
            request.transport.abort()


def _dumps(value: object) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


# Errors and logging ------------------------------------------------------------


def error_response(status: int, error: str, hint: str) -> web.Response:
    body = json.dumps({"error": error, "hint": hint}).encode()
    return web.Response(status=status, body=body, content_type="application/json")


def response_for(exc: Exception) -> web.Response:
    """The JSON error reply for an exception raised by a handler."""
    if isinstance(exc, BadQuery):
        return error_response(400, str(exc), exc.hint)
    if isinstance(exc, SessionNotFound):
        return error_response(404, str(exc), HINT_404)
    if isinstance(exc, PacketsNotWritten):
        logger.info("packets not written error=%s", exc)
        return error_response(410, str(exc), HINT_410_UNWRITTEN)
    if isinstance(exc, PcapUnavailable):
        logger.error("pcap unavailable error=%s", exc)
        return error_response(410, str(exc), HINT_410)
    if isinstance(exc, StoreError):
        logger.error("store unreachable error=%s", exc)
        return error_response(503, f"session store failed: {exc}", HINT_503)
    if isinstance(exc, web.HTTPException):
        return error_response(exc.status, exc.reason, HINT_ROUTES)
    logger.exception("request failed")
    return error_response(500, f"internal error: {type(exc).__name__}", "see the log")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def log_and_translate(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """One INFO line per request; fpc errors become JSON replies."""
    started = time.monotonic()
    try:
        resp = await handler(request)
    except (FpcError, web.HTTPException) as exc:
        resp = response_for(exc)
    except Exception as exc:  # a bug: reply 500 and keep serving
        resp = response_for(exc)
    logger.info(
        "request method=%s path=%s status=%d bytes=%d ms=%.1f remote=%s",
        request.method,
        request.rel_url.raw_path[:200],
        resp.status,
        _sent_bytes(resp),
        (time.monotonic() - started) * 1000,
        request.remote,
    )
    return resp


def _sent_bytes(resp: web.StreamResponse) -> int:
    if isinstance(resp, web.Response) and isinstance(resp.body, bytes):
        return len(resp.body)
    return resp.body_length


def make_app(service: Service) -> web.Application:
    app = web.Application(middlewares=[log_and_translate])
    app[SERVICE] = service
    app.router.add_get("/api/sessions", handle_sessions)
    app.router.add_get("/api/sessions.pcap", handle_sessions_pcap)
    app.router.add_get("/api/session/{sid}", handle_session)
    return app


async def start_site(service: Service, host: str, port: int) -> web.AppRunner:
    """Start serving `service` on host:port; the caller cleans the runner up."""
    runner = web.AppRunner(make_app(service), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


# Command line ------------------------------------------------------------------


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT."""
    host, sep, port = value.rpartition(":")
    if not sep or not is_number(port) or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"--listen {value!r} is not HOST:PORT; use e.g. 127.0.0.1:8005"
        )
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fpc-pcapd", description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-dir",
        help="the node's data directory (fpc.sqlite, pcap/); optional with --es",
    )
    p.add_argument(
        "--listen",
        type=parse_listen,
        default="127.0.0.1:8005",
        metavar="HOST:PORT",
        help="address to serve on (default 127.0.0.1:8005)",
    )
    p.add_argument(
        "--es", type=es_url_arg, metavar="URL", help="Elasticsearch URL (else SQLite)"
    )
    p.add_argument("--es-prefix", default="fpc", help="ES index prefix (default fpc)")
    p.add_argument(
        "--advertise",
        metavar="URL",
        help="URL other fpc-pcapd reach this one at (default from --listen)",
    )
    p.add_argument("--pcap-dir", help="PCAP directory (default DATA_DIR/pcap)")
    p.add_argument(
        "--node",
        default=default_node(),
        help="node whose packets are here (default: host name, as fpc-capture)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log DEBUG lines")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, or None."""
    if not args.es and not args.data_dir:
        return "give --data-dir DIR (the node's data directory) or --es URL"
    if not args.es and not os.path.exists(os.path.join(args.data_dir, SQLITE_NAME)):
        return (
            f"no session database {SQLITE_NAME} in {args.data_dir}; give the "
            "--data-dir that fpc-capture wrote to"
        )
    return None


async def serve(args: argparse.Namespace) -> int:
    # Imported here so that the service can be tested without a store backend.
    open_store = importlib.import_module("fpc.store").open_store
    pool = ThreadPoolExecutor(1, thread_name_prefix="fpc-store")
    loop = asyncio.get_running_loop()
    try:
        es = EsConfig(url=args.es, prefix=args.es_prefix) if args.es else None
        # A central fpc-pcapd indexes nothing; its spool directory stays empty.
        data_dir = args.data_dir or tempfile.mkdtemp(prefix="fpc-pcapd-")
        store = await loop.run_in_executor(pool, open_store, data_dir, es)
    except FpcError as exc:
        logger.critical("store open failed error=%s", exc)
        pool.shutdown()
        return 2
    pcap_dir = args.pcap_dir or os.path.join(args.data_dir or ".", "pcap")
    service = Service(store, pcap_dir, node=args.node, store_pool=pool)
    host, port = args.listen
    try:
        runner = await start_site(service, host, port)
    except OSError as exc:
        logger.critical(
            "cannot listen on %s:%d (%s); pick a free address with --listen",
            host, port, exc.strerror,
        )  # fmt: skip
        await service.in_store(store.close)
        service.shutdown()
        return 2
    if args.es:
        url = args.advertise or advertised_url(host, port)
        register = functools.partial(store.register_node, args.node, pcapd_url=url)
        await service.in_store(register)
    logger.info("server listening host=%s port=%d pcap_dir=%s", host, port, pcap_dir)
    await _wait_for_signal(loop)
    logger.info("server stopping")
    await runner.cleanup()
    await service.in_store(store.close)
    service.shutdown()
    return 0


def advertised_url(host: str, port: int) -> str:
    """The URL peers use for this service: the host name when listening on all."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _wait_for_signal(loop: asyncio.AbstractEventLoop) -> None:
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    import uvloop

    from fpc.logsetup import setup_logging

    args = parse_args(argv)
    setup_logging(1 if args.verbose else 0, args.node)
    problem = check_args(args)
    if problem is not None:
        logger.critical("%s", problem)
        return 2
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(args))


if __name__ == "__main__":
    # `python -m fpc.server`: run the imported module, whose logger is fpc.server.
    from fpc.server import main as _main

    raise SystemExit(_main())
