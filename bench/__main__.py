"""`python3 -m bench`: run the offline, live and memory benchmarks and write results.

Flags pick the parts and sizes; `--quick` runs everything small (about two
minutes) and writes into `bench/results/quick/` without touching the README.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
import tempfile
from types import ModuleType

from bench import report
from bench.captures import DEFAULT_CACHE_DIR
from bench.stats import host_facts

logger = logging.getLogger("bench")

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ("offline", "live", "memory")
DEFAULT_RATES = "20000,50000,100000,150000,200000,top"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m bench", description=__doc__)
    p.add_argument(
        "parts",
        nargs="*",
        choices=[*PARTS, []],
        metavar="PART",
        help=f"parts to run, any of {', '.join(PARTS)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes everywhere; results go to results/quick/",
    )
    p.add_argument("--results-dir", help="where JSON, Markdown and PNG files go")
    p.add_argument(
        "--cache-dir",
        default=DEFAULT_CACHE_DIR,
        help="generated captures are kept here (default %(default)s)",
    )
    off = p.add_argument_group("offline")
    off.add_argument(
        "--packets",
        type=int,
        default=2_200_000,
        help="mkpcap packets for the offline capture",
    )
    off.add_argument("--seed", type=int, default=1, help="mkpcap seed")
    off.add_argument("--pcap", help="use this capture instead of generating one")
    off.add_argument("--repeats", type=int, default=3, help="runs per tool")
    off.add_argument(
        "--fpc-args",
        type=shlex.split,
        default=[],
        help="extra fpc-capture flags, e.g. '--workers 2'",
    )
    off.add_argument(
        "--fpc-variant",
        action="append",
        default=[],
        type=_variant,
        dest="fpc_variants",
        metavar="LABEL=ARGS",
        help="another fpc row, e.g. 'fpc w2=--workers 2' (repeatable)",
    )
    live = p.add_argument_group("live")
    live.add_argument(
        "--live-packets",
        type=int,
        default=200_000,
        help="mkpcap packets replayed per rate",
    )
    live.add_argument(
        "--rates",
        default=DEFAULT_RATES,
        help="tcpreplay packets/s, 'top' for --topspeed",
    )
    live.add_argument("--live-repeats", type=int, default=1, help="runs per rate")
    live.add_argument(
        "--live-loops",
        type=int,
        default=1,
        help="tcpreplay --loop: send the capture this many times",
    )
    mem = p.add_argument_group("memory")
    mem.add_argument(
        "--sessions",
        type=_int_list,
        default=[250_000, 1_000_000],
        help="active session counts to measure (comma separated)",
    )
    mem.add_argument(
        "--memory-app-layer",
        choices=["on", "off", "both"],
        default="both",
        help="measure with application-layer parsing on, off or both",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def _variant(text: str) -> tuple[str, list[str]]:
    label, sep, extra = text.partition("=")
    if not sep or not label.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write LABEL=ARGS")
    return label.strip(), shlex.split(extra)


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def apply_quick(args: argparse.Namespace) -> None:
    """Shrink every size so that the whole suite runs in about two minutes."""
    args.packets = min(args.packets, 50_000)
    args.repeats = min(args.repeats, 2)
    args.live_packets = min(args.live_packets, 20_000)
    args.rates = "20000,100000,top"
    args.sessions = [20_000, 50_000]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.quick:
        apply_quick(args)
    default_dir = os.path.join(HERE, "results", "quick" if args.quick else "")
    results_dir = args.results_dir or os.path.normpath(default_dir)
    os.makedirs(results_dir, exist_ok=True)
    failed = 0
    for part in args.parts or PARTS:
        failed += run_part(part, args, results_dir)
    return 1 if failed else 0


def run_part(part: str, args: argparse.Namespace, results_dir: str) -> int:
    """Run one part and write its results; returns 1 if it failed."""
    logger.info("part started part=%s", part)
    module = importlib.import_module(f"bench.bench_{part}")
    try:
        with tempfile.TemporaryDirectory(prefix=f"fpc-bench-{part}-") as work:
            data = _RUNNERS[part](module, args, work)
    except Exception:
        logger.exception("part failed part=%s", part)
        return 1
    data["host"] = host_facts()
    data["quick"] = args.quick
    table = module.render(data)
    report.write_json(results_dir, part, data)
    report.write_markdown(results_dir, part, table)
    if not args.quick and args.results_dir is None:
        report.update_readme(part, table)
    png = os.path.join(results_dir, f"{part}.png")
    try:
        module.plot(data, png)
    except Exception:
        logger.exception("plot failed part=%s path=%s", part, png)
    print(f"\n## {part}\n\n{table}\nplot: {png}\n", file=sys.stdout, flush=True)
    return 0


def _offline(module: ModuleType, args: argparse.Namespace, work: str) -> dict:
    return module.run_offline(module.plan_from_args(args, work))


def _live(module: ModuleType, args: argparse.Namespace, work: str) -> dict:
    return module.run_live(module.plan_from_args(args, work))


def _memory(module: ModuleType, args: argparse.Namespace, work: str) -> dict:
    modes = (
        ["on", "off"] if args.memory_app_layer == "both" else [args.memory_app_layer]
    )
    return module.run_memory(args.sessions, args.cache_dir, work, modes)


_RUNNERS = {"offline": _offline, "live": _live, "memory": _memory}

if __name__ == "__main__":
    sys.exit(main())
