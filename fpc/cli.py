"""`fpc-capture`: the node's command line, live (-i) or from capture files (-r).

Parses flags in tcpdump's conventions over the TOML config, sets up logging
(the only place that does), opens the store and runs `fpc.pipeline` until the
input ends or SIGINT/SIGTERM arrives, then flushes everything and prints a
summary of what it did.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from fpc.caplock import CaptureLock
from fpc.config import (
    Config,
    fit_buffer_mb,
    fit_workers,
    load_config,
    parse_duration,
    parse_size,
)
from fpc.errors import CaptureError, FpcError
from fpc.logsetup import setup_logging
from fpc.pipeline import OFFLINE_HOLD_RECORDS, Pipeline
from fpc.printout import RecordPrinter
from fpc.runtime import tune_for_capture
from fpc.store import open_store

logger = logging.getLogger("fpc.cli")

TICK_S = 1.0  # live capture: end idle sessions this often, even with no traffic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fpc-capture",
        description="Capture packets to rotating PCAP files and index their sessions.",
    )
    src = p.add_argument_group("input (one of)")
    src.add_argument(
        "-r",
        "--read",
        action="append",
        metavar="PATH",
        help="pcap/pcapng file or directory; repeat for several",
    )
    src.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="read directories given to -r recursively",
    )
    src.add_argument("-i", "--iface", help="capture live from this interface")
    cap = p.add_argument_group("capture")
    cap.add_argument("-s", "--snaplen", type=int, help="bytes kept per packet")
    cap.add_argument(
        "-p",
        "--no-promisc",
        action="store_true",
        help="do not put the interface into promiscuous mode",
    )
    cap.add_argument(
        "-B",
        "--buffer-mb",
        type=_buffer_mb_arg,
        help="kernel buffer per worker, MiB (1-2047), or auto (the default: "
        "1/32 of the RAM shared by the workers, 64-256 each)",
    )
    cap.add_argument("--bpf", help="BPF filter (or give it after the options)")
    cap.add_argument("--workers", help="processes sharing the capture, 1-64 or auto")
    cap.add_argument("expression", nargs="*", help="BPF filter, as in tcpdump")
    out = p.add_argument_group("output")
    out.add_argument("-c", "--config", help="TOML config file")
    out.add_argument("--node", help="node name (default: host name)")
    out.add_argument("--data-dir", help="session database and PCAP files")
    out.add_argument("--pcap-dir", help="PCAP files (default: DATA_DIR/pcap)")
    out.add_argument("--max-file-size", help="rotate PCAP files at this size (1G)")
    out.add_argument("--max-file-time", help="rotate PCAP files at this age (1h)")
    out.add_argument("--es", metavar="URL", help="index SPI records into Elasticsearch")
    out.add_argument(
        "--print",
        action="store_true",
        dest="print_records",
        help="write every SPI record as a JSON line on stdout",
    )
    out.add_argument(
        "--no-app-layer",
        action="store_true",
        help="skip application-layer parsing (HTTP, DNS, TLS, SSH)",
    )
    out.add_argument("-v", "--verbose", action="count", default=0)
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p  # fmt: skip


# Words of tcpdump's filter language: read as the filter even if a file or
# directory of that name happens to exist here.
BPF_WORDS = frozenset(
    "dst src host net port portrange gateway less greater ip ip6 arp rarp tcp "
    "udp icmp icmp6 sctp igmp pim ah esp vrrp ether broadcast multicast vlan "
    "mpls proto and or not len inbound outbound geneve".split()
)


def split_inputs(args: argparse.Namespace) -> None:
    """With -r, leading positional arguments that exist on disk are more inputs
    (`fpc-capture -r *.pcap tcp port 80`); the rest is the BPF expression."""
    if not args.read:
        return
    while args.expression and os.path.exists(args.expression[0]):
        word = args.expression[0]
        if word in BPF_WORDS:
            print(
                f"fpc-capture: {word!r} exists on disk but is read as part of "
                "the BPF filter; to read it as a capture, give it with -r",
                file=sys.stderr,
            )
            break
        args.read.append(args.expression.pop(0))


def config_from_args(args: argparse.Namespace) -> Config:
    if args.bpf and args.expression:
        raise FpcError(
            f"command line: a BPF filter both in --bpf ({args.bpf!r}) and after "
            f"the options ({' '.join(args.expression)!r}); give it once"
        )
    bpf = args.bpf or " ".join(args.expression) or None
    try:
        size = parse_size(args.max_file_size) if args.max_file_size else None
        age = parse_duration(args.max_file_time) if args.max_file_time else None
    except ValueError as exc:
        raise FpcError(f"command line: {exc}") from exc
    cfg = load_config(
        args.config or os.environ.get("FPC_CONFIG"),
        {
            "node": args.node,
            "data_dir": args.data_dir,
            "capture.interface": args.iface,
            "capture.snaplen": args.snaplen,
            "capture.promisc": False if args.no_promisc else None,
            "capture.buffer_mb": args.buffer_mb,
            "capture.bpf": bpf,
            "writer.pcap_dir": args.pcap_dir,
            "writer.max_file_size": size,
            "writer.max_file_time": age,
            "sessions.app_layer": False if args.no_app_layer else None,
            "es.url": args.es,
            "capture.workers": _workers_arg(args),
        },
    )
    workers = fit_workers(cfg.capture.workers, live=not args.read)
    buffer_mb = fit_buffer_mb(cfg.capture.buffer_mb, workers)
    capture = replace(cfg.capture, workers=workers, buffer_mb=buffer_mb)
    return replace(cfg, capture=capture)


def _buffer_mb_arg(text: str) -> int | str:
    """-B: "auto" (as the config file writes it) or MiB in ASCII digits; the
    upper bound is checked with the config's."""
    if text == "auto":
        return text
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a number of MiB or auto")


def _workers_arg(args: argparse.Namespace) -> int | None:
    if args.workers is None:
        return None
    from fpc.workers import parse_workers

    return parse_workers(args.workers, live=not args.read)


def install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        logger.info("signal received signal=%s; flushing", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    if bool(args.read) == bool(args.iface):
        print("fpc-capture: give either -r PATH or -i IFACE", file=sys.stderr)
        return 2
    split_inputs(args)
    try:
        cfg = config_from_args(args)
        if args.read and cfg.capture.bpf:
            from fpc.offline import BpfFilter

            BpfFilter(cfg.capture.bpf).check()
    except FpcError as exc:
        print(f"fpc-capture: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.verbose, cfg.node)
    tune_for_capture()
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        with CaptureLock(cfg.pcap_dir, cfg.node):
            return run(cfg, args, stop)
    except FpcError as exc:
        logger.critical("%s", exc)
        return 1


def run(cfg: Config, args: argparse.Namespace, stop: threading.Event) -> int:
    if args.read and cfg.capture.workers > 1 and not _all_regular_files(args.read):
        # every worker reads its files itself: a pipe can be read only once
        logger.info(
            "an input is not a regular file (a pipe or a device); one process "
            "reads it, --workers %d is not used", cfg.capture.workers,
        )  # fmt: skip
        cfg = replace(cfg, capture=replace(cfg.capture, workers=1))
    if cfg.capture.workers > 1:
        from fpc.workers import run_workers

        return run_workers(cfg, args, stop)
    store = open_store(cfg.data_dir, cfg.es if cfg.es.url else None)
    printer = RecordPrinter(live=not args.read) if args.print_records else None
    hold = OFFLINE_HOLD_RECORDS if args.read else 0
    pipeline = Pipeline(cfg, store, printer.add if printer else None, hold)
    reporter = start_node_stats(cfg, store, pipeline)
    started = time.monotonic()
    try:
        if args.read:
            from fpc.offline import has_spare_core, read_files

            errors = read_files(
                pipeline, args.read, args.recursive, cfg, stop, args.quiet,
                overlap=has_spare_core(1),
            )  # fmt: skip
        else:
            errors = capture_live(pipeline, cfg, stop)
    finally:
        pipeline.finish()
        if printer is not None:
            printer.flush()
        if reporter is not None:
            reporter.stop()
        store.close()
    summary = pipeline.summary()
    print_summary(summary, time.monotonic() - started)
    return 1 if errors or lost_anything(summary) else 0


def _all_regular_files(paths: list[str]) -> bool:
    """Directories count as regular: only their regular files are read. A
    missing path does not count here; reading reports it."""
    return all(
        os.path.isdir(p) or os.path.isfile(p) or not os.path.exists(p) for p in paths
    )


def start_node_stats(cfg: Config, store: object, source: Any) -> Any:
    """With Elasticsearch, register the node and index its stats every few
    seconds; `source.node_counters()` gives the totals (a Pipeline, or the
    sum over worker processes)."""
    if not cfg.es.url:
        return None
    from fpc.nodestats import NodeStatsReporter

    store.register_node(cfg.node, pcap_dir=os.path.abspath(cfg.pcap_dir))  # type: ignore[attr-defined]
    reporter = NodeStatsReporter(store, cfg.node, source.node_counters, cfg.data_dir)  # type: ignore[arg-type]
    reporter.start()
    return reporter


def capture_live(
    pipeline: Pipeline,
    cfg: Config,
    stop: threading.Event,
    fanout: tuple[int, int] | None = None,
) -> int:
    """Capture from the interface until `stop`; returns the number of errors.

    `fanout` (group id, mode) shares the interface with other workers.
    """
    from fpc.capture import LiveCapture

    c = cfg.capture
    cap = LiveCapture(
        c.interface, c.snaplen, c.promisc, c.buffer_mb, c.bpf or None, fanout=fanout
    )
    cap.open()
    pipeline.capture_stats = cap.stats
    next_tick = time.monotonic() + TICK_S
    try:
        # The native capture thread fills the ring; this thread processes.
        # Empty batches come while the interface is idle, so idle sessions
        # still end about once a tick.
        for batch in cap.batches(stop, idle=True):
            pipeline.process(batch)
            if time.monotonic() >= next_tick:
                pipeline.tick(time.time_ns())
                next_tick = time.monotonic() + TICK_S
    except CaptureError as exc:
        logger.critical("%s", exc)
        return 1
    finally:
        cap.close()  # logs the final received / dropped counts
    return 0


def print_summary(s: dict[str, int], seconds: float) -> None:
    rate = s["packets"] / seconds if seconds > 0 else 0.0
    lines = [
        f"packets read       {s['packets']:>12}  ({rate:,.0f}/s in {seconds:.1f} s)",
        f"bytes read         {s['bytes']:>12}",
        f"in sessions        {s['session_packets']:>12}",
        f"non-IP frames      {s['non_ip']:>12}",
        f"malformed          {s['malformed']:>12}",
        f"unsupported link   {s['unsupported_link']:>12}",
        f"sessions           {s['sessions']:>12}",
        f"SPI records        {s['records']:>12}",
        f"PCAP files         {s['pcap_files']:>12}",
        f"PCAP packets       {s['pcap_packets']:>12}",
        f"PCAP bytes         {s['pcap_bytes']:>12}",
    ]
    if s["pcap_write_failed"]:
        lines.append(f"NOT WRITTEN        {s['pcap_write_failed']:>12}")
    if s.get("app_errors"):
        lines.append(f"app parse errors   {s['app_errors']:>12}")
    if s["unsaved_records"]:
        lines.append(f"records not stored {s['unsaved_records']:>12}")
    if s.get("lost_records"):
        lines.append(f"records LOST       {s['lost_records']:>12}")
    print("\n".join(lines), file=sys.stderr)


def lost_anything(s: dict[str, int]) -> bool:
    """Whether packets or records of the run did not reach the disk: the run
    then exits 1, as for damaged input."""
    return bool(
        s.get("pcap_write_failed") or s.get("unsaved_records") or s.get("lost_records")
    )


if __name__ == "__main__":
    sys.exit(main())
