"""`fpc-capture --workers N`: one node's capture spread over N processes.

Live (-i): each worker opens the interface itself and joins one
PACKET_FANOUT_HASH group, so the kernel keeps every session on one worker.
Files (-r): every worker reads the files and keeps the packets whose session
key hash is its own (`hash % N`); non-IP frames belong to worker 0, and later
IP fragments follow their first fragment.

Every worker runs its own `Pipeline`: its own PCAP files (file numbers from
the store's per-node sequence), its own store connection (and, with
Elasticsearch, its own spool) and session table. Each publishes its node
counters into shared memory; with Elasticsearch this process indexes their sum
as the node's stats. On SIGINT/SIGTERM each worker ends
its sessions and closes its file; this process then prints one summary, the
sum of the workers' counters, in the format of the single-process run.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for
from typing import Any, cast

import numpy as np

from fpc import decode as dc
from fpc.config import AUTO_WORKERS, MAX_WORKERS, Config, fit_workers
from fpc.errors import FpcError
from fpc.packets import PacketBatch
from fpc.pipeline import OFFLINE_HOLD_RECORDS, Pipeline
from fpc.printout import RecordPrinter
from fpc.store import open_store

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0  # every worker has opened its store and files by then
MAX_FRAGMENT_IDS = 65_536  # first fragments whose worker is remembered


def parse_workers(text: str, live: bool) -> int:
    """Workers from `--workers`: a number, or "auto" to fit the machine."""
    if text != "auto":
        try:
            workers = int(text)
        except ValueError:
            workers = 0
        if not 1 <= workers <= MAX_WORKERS:
            raise FpcError(
                f"command line: --workers {text!r} is not a number from 1 to "
                f"{MAX_WORKERS}; give one, or auto"
            ) from None
        return workers
    return fit_workers(AUTO_WORKERS, live)


@dataclass
class _Shared:
    """What the workers share with each other and with this process."""

    results: Any  # SimpleQueue of (index, summary, errors)
    file_lock: Any  # serializes opening the store (SQLite switching on WAL)
    print_lock: Any  # one worker writes --print output at a time
    started: Any  # Barrier: nobody writes packets before every writer repaired
    counters: Any  # Array: each worker's node counters, for the node stats


def run_workers(cfg: Config, args: argparse.Namespace, stop: threading.Event) -> int:
    """Run the capture over cfg.capture.workers processes; the exit status."""
    n = cfg.capture.workers
    ctx = _context()
    counters = ctx.Array("q", n * len(COUNTER_KEYS), lock=False)
    shared = _Shared(
        ctx.SimpleQueue(), ctx.Lock(), ctx.Lock(), ctx.Barrier(n), counters
    )
    started = time.monotonic()
    stats = NodeStats(cfg, counters, n)
    try:
        if args.read:
            errors, summaries = _run_offline(cfg, args, stop, shared)
        else:
            errors, summaries = _run_live(cfg, args, stop, shared)
    finally:
        stats.stop()
    from fpc.cli import lost_anything, print_summary

    merged = merge_summaries(summaries)
    if "packets" in merged:
        print_summary(merged, time.monotonic() - started)
    return 1 if errors or lost_anything(merged) else 0


COUNTER_KEYS = (
    "packets_received", "packets_dropped", "bytes", "sessions",
    "active_sessions", "pcap_bytes_written",
)  # fmt: skip
PUBLISH_INTERVAL_S = 1.0


class CounterPublisher:
    """A worker's thread copying its node counters into the shared array."""

    def __init__(self, array: Any, index: int, read: Callable[[], dict[str, int]]):
        self.array, self.base, self.read = array, index * len(COUNTER_KEYS), read
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def publish(self) -> None:
        values = self.read()
        for k, key in enumerate(COUNTER_KEYS):
            self.array[self.base + k] = values.get(key, 0)

    def _run(self) -> None:
        while True:
            time.sleep(PUBLISH_INTERVAL_S)
            self.publish()


class NodeStats:
    """With Elasticsearch: registers the node and indexes the workers' summed
    counters as its stats, from this process."""

    def __init__(self, cfg: Config, array: Any, n: int) -> None:
        self.store: Any = None
        self.reporter: Any = None
        if not cfg.es.url:
            return
        from fpc.cli import start_node_stats

        self.store = open_store(cfg.data_dir, cfg.es, "stats")
        self.array, self.n = array, n
        self.reporter = start_node_stats(cfg, self.store, self)

    def node_counters(self) -> dict[str, int]:
        width = len(COUNTER_KEYS)
        return {
            key: sum(self.array[i * width + k] for i in range(self.n))
            for k, key in enumerate(COUNTER_KEYS)
        }

    def stop(self) -> None:
        if self.reporter is not None:
            self.reporter.stop()
        if self.store is not None:
            self.store.close()


def merge_summaries(summaries: list[dict[str, int]]) -> dict[str, int]:
    """The sum of each counter over the workers."""
    merged: dict[str, int] = {}
    for summary in summaries:
        for key, value in summary.items():
            merged[key] = merged.get(key, 0) + value
    return merged


def _context() -> Any:
    import multiprocessing

    # fork: the workers inherit the loaded modules, the shared counters and
    # locks, and the collector settings of fpc.runtime
    return multiprocessing.get_context("fork")


def _start(
    shared: _Shared, n: int, target: Callable[..., None], *args: Any
) -> list[Any]:
    sys.stdout.flush()
    sys.stderr.flush()
    procs = [
        _context().Process(
            target=target, args=(i, shared, *args), name=f"fpc-worker-{i}"
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    return procs


def _collect(
    procs: list[Any], shared: _Shared, stop: threading.Event, stop_all_on_exit: bool
) -> tuple[int, list[dict[str, int]]]:
    """Wait for the workers; their results. A stop is passed on to every
    worker; with `stop_all_on_exit` (live) so is a worker that ended early
    (e.g. could not open the interface)."""
    signalled = False
    while any(p.is_alive() for p in procs):
        ended = stop_all_on_exit and any(p.exitcode is not None for p in procs)
        if (stop.is_set() or ended) and not signalled:
            for p in procs:
                if p.pid is not None and p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)
            signalled = True
        # wakes as soon as a worker ends, or every 0.1 s to pass on a stop
        wait_for([p.sentinel for p in procs if p.is_alive()], timeout=0.1)
    for p in procs:
        p.join()
    errors, summaries = 0, []
    while not shared.results.empty():
        _index, summary, worker_errors = shared.results.get()
        summaries.append(summary)
        errors += worker_errors
    lost = [p.name for p in procs if p.exitcode != 0]
    if lost or len(summaries) != len(procs):
        logger.error(
            "workers failed names=%s exit_codes=%s; their counters are missing",
            ",".join(lost), [p.exitcode for p in procs],
        )  # fmt: skip
        errors += 1
    return errors, summaries


# --- live -------------------------------------------------------------------


def _run_live(
    cfg: Config, args: argparse.Namespace, stop: threading.Event, shared: _Shared
) -> tuple[int, list[dict[str, int]]]:
    from fpc.capture import FANOUT_HASH

    fanout = (os.getpid() & 0xFFFF, FANOUT_HASH)
    logger.info(
        "starting workers count=%d interface=%s fanout_group=%d",
        cfg.capture.workers, cfg.capture.interface, fanout[0],
    )  # fmt: skip
    procs = _start(shared, cfg.capture.workers, _live_worker, cfg, args, fanout)
    return _collect(procs, shared, stop, stop_all_on_exit=True)


def _live_worker(
    index: int,
    shared: _Shared,
    cfg: Config,
    args: argparse.Namespace,
    fanout: tuple[int, int],
) -> None:
    from fpc.cli import capture_live, install_stop_handlers

    stop = threading.Event()
    install_stop_handlers(stop)
    _run_worker(
        index, shared, cfg, args, lambda p: capture_live(p, cfg, stop, fanout=fanout)
    )


# --- capture files ----------------------------------------------------------


def _run_offline(
    cfg: Config, args: argparse.Namespace, stop: threading.Event, shared: _Shared
) -> tuple[int, list[dict[str, int]]]:
    from fpc.offline import list_with_sizes

    n = cfg.capture.workers
    # Listed once, with each file's size now: every worker reads the same
    # files up to the same byte, even if one grows or a new one appears.
    listed = list_with_sizes(args.read, args.recursive)
    logger.info("starting workers count=%d files=%d", n, len(listed))
    procs = _start(shared, n, _offline_worker, cfg, args, listed)
    return _collect(procs, shared, stop, stop_all_on_exit=False)


def _offline_worker(
    index: int,
    shared: _Shared,
    cfg: Config,
    args: argparse.Namespace,
    listed: list[tuple[str, int | None]],
) -> None:
    # Every worker reads the files itself and keeps the packets of its own
    # sessions: from the page cache a read costs less than handing the
    # packets from one reader process on to the others, and no core waits
    # for that reader. A signal (to the group, or forwarded by the parent)
    # stops each worker after its current batch.
    from fpc.cli import install_stop_handlers
    from fpc.offline import has_spare_core, read_files

    stop = threading.Event()
    install_stop_handlers(stop)
    n = cfg.capture.workers
    if index:
        # The same files give every worker the same damage and the same
        # counts: worker 0 alone reports them.
        for name in ("fpc.offline", "fpc.reader"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    overlap = has_spare_core(n)

    def consume(pipeline: Pipeline) -> int:
        share = OwnShare(pipeline, index, n, cfg.sessions.key_vlan)
        return read_files(
            cast(Pipeline, share), args.read, args.recursive, cfg, stop,
            quiet=args.quiet or index > 0, overlap=overlap, listed=listed,
        )  # fmt: skip

    _run_worker(index, shared, cfg, args, consume)


class Router:
    """The worker of each packet: its session hash modulo the workers, so that
    every worker, looking at the same packets, agrees on who owns each."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._frags: OrderedDict[tuple[bytes, bytes, int, int], int] = OrderedDict()

    def targets(self, dec: np.ndarray) -> np.ndarray:
        is_ip = dec["status"] == dc.STATUS_IP
        keyed = is_ip | (dec["status"] == dc.STATUS_LINK)
        target = np.where(keyed, dec["hash"] % self.n, 0).astype(np.int64)
        for j in np.flatnonzero((dec["frag"] != 0) & is_ip).tolist():
            target[j] = self._fragment_target(dec[j], int(target[j]))
        return target

    def _fragment_target(self, row: Any, own: int) -> int:
        """Later fragments go where their first fragment went, as the session
        table joins them to its session (fpc.session)."""
        fid = (bytes(row["src"]), bytes(row["dst"]), int(row["proto"]),
               int(row["ip_id"]))  # fmt: skip
        if int(row["frag"]) & dc.FRAG_NONFIRST:
            return self._frags.get(fid, 0)
        self._frags[fid] = own
        if len(self._frags) > MAX_FRAGMENT_IDS:
            self._frags.popitem(last=False)
        return own


class OwnShare:
    """Stands in for the pipeline in `read_files`: passes on the packets of
    this worker's sessions, decoded once, then ends the sessions idle as of
    the newest packet read, so sessions are cut exactly as in one process."""

    def __init__(self, pipeline: Pipeline, index: int, n: int, key_vlan: bool):
        self.pipeline, self.index, self.key_vlan = pipeline, index, key_vlan
        self.router = Router(n)
        self.clock_ns = -(1 << 63)

    def process(self, batch: PacketBatch) -> None:
        if len(batch) == 0:
            return
        dec = dc.decode_batch(batch, self.key_vlan)
        mine = self.router.targets(dec) == self.index
        # take: a structured array's rows by index cost a tenth of dec[mine]
        self.pipeline.process(batch.subset(mine), dec.take(np.flatnonzero(mine)))
        self.clock_ns = max(self.clock_ns, int(batch.ts_ns.max()))
        self.pipeline.tick(self.clock_ns)


# --- one worker -------------------------------------------------------------


def _run_worker(
    index: int,
    shared: _Shared,
    cfg: Config,
    args: argparse.Namespace,
    work: Callable[[Pipeline], int],
) -> None:
    """Open the store and pipeline, wait for the others, run `work`, report."""
    printer = None
    if args.print_records:
        printer = RecordPrinter(not args.read, shared.print_lock)
    errors, store, pipeline = 0, None, None
    try:
        with shared.file_lock:  # SQLite: two first opens race to switch on WAL
            es = cfg.es if cfg.es.url else None
            store = open_store(cfg.data_dir, es, f"worker-{index}")
        hold = OFFLINE_HOLD_RECORDS if args.read else 0
        pipeline = Pipeline(cfg, store, printer.add if printer else None, hold)
        publisher = CounterPublisher(shared.counters, index, pipeline.node_counters)
        shared.started.wait(START_TIMEOUT_S)
        publisher.start()
        errors = work(pipeline)
    except (FpcError, threading.BrokenBarrierError) as exc:
        shared.started.abort()
        reason = str(exc) or "another worker failed"
        logger.critical("worker %d stopped: %s", index, reason)
        errors = 1
    finally:
        if pipeline is not None:
            pipeline.finish()
            CounterPublisher(shared.counters, index, pipeline.node_counters).publish()
        if store is not None:
            store.close()
        if printer is not None:
            printer.flush()
    summary = pipeline.summary() if pipeline is not None else {}
    shared.results.put((index, summary, errors))
