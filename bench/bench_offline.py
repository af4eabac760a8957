"""Offline benchmark: fpc-capture -r against tcpdump -r -w and argus -r -w.

Every tool reads the same capture (kept in the page cache) in a fresh
subprocess; the tools take turns (fpc, tcpdump, argus, fpc, ...) so that
background load hits them alike. Output directories are removed after each
run. fpc runs with PCAP writing, SPI records and the SQLite store on.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
from dataclasses import dataclass, field

from bench.captures import mkpcap_capture, warm_page_cache
from bench.measure import RunResult, run_measured
from bench.report import bar_plot, markdown_table
from bench.stats import REPO, capture_counts, git_version, median, ratio

logger = logging.getLogger(__name__)

BASELINES = ("tcpdump", "argus")
# One untimed run of each tool first. On a freshly booted VM the first few GB
# of page cache written land on guest memory the hypervisor has not backed yet:
# a 2 GB write then took 2.6 s instead of 0.37 s, whichever tool wrote first.
WARMUP_ROUNDS = 1
FPC_PACKETS_RE = re.compile(r"^packets read\s+(\d+)", re.MULTILINE)


@dataclass(frozen=True)
class Tool:
    """One row of the offline table: a label and how to build its command."""

    label: str
    kind: str  # "fpc", "tcpdump" or "argus"
    extra: tuple[str, ...] = ()


@dataclass
class OfflinePlan:
    pcap: str
    tools: list[Tool]
    repeats: int
    work_dir: str
    results: dict[str, list[dict]] = field(default_factory=dict)


def tool_argv(tool: Tool, pcap: str, out_dir: str) -> list[str]:
    """The command line that reads `pcap` and writes into `out_dir`."""
    if tool.kind == "fpc":
        cli = [sys.executable, "-m", "fpc.cli", "-r", pcap, "--data-dir", out_dir]
        return [*cli, "-q", *tool.extra]
    if tool.kind == "tcpdump":
        return ["tcpdump", "-r", pcap, "-w", os.path.join(out_dir, "out.pcap")]
    return ["argus", "-r", pcap, "-w", os.path.join(out_dir, "out.argus")]


def run_offline(plan: OfflinePlan) -> dict:
    """Run every tool `repeats` times in turn; return the summary as a dict."""
    packets, wire_bytes = capture_counts(plan.pcap)
    warm_page_cache(plan.pcap)
    logger.info(
        "offline capture=%s packets=%d bytes=%d", plan.pcap, packets, wire_bytes
    )
    for _ in range(WARMUP_ROUNDS):
        for tool in plan.tools:
            _run_once(tool, plan)
        logger.info("offline warm-up round done (not counted)")
    for i in range(plan.repeats):
        for tool in plan.tools:
            run = _run_once(tool, plan)
            plan.results.setdefault(tool.label, []).append(run)
            logger.info(
                "offline run=%d tool=%s wall_s=%.2f cpu_s=%.2f rss_mb=%.0f",
                i + 1, tool.label, run["wall_s"], run["cpu_s"], run["peak_rss_mb"],
            )  # fmt: skip
    return summarize(plan, packets, wire_bytes)


def _run_once(tool: Tool, plan: OfflinePlan) -> dict:
    out_dir = os.path.join(plan.work_dir, tool.label.replace(" ", "_"))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    try:
        result = run_measured(tool_argv(tool, plan.pcap, out_dir), cwd=REPO)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"{tool.label} failed with status {result.returncode}: "
            f"{result.stderr.strip()[-2000:]}"
        )
    return _run_row(tool, result)


def _run_row(tool: Tool, r: RunResult) -> dict:
    row = {
        "wall_s": r.wall_s,
        "cpu_s": r.cpu_s,
        "user_s": r.user_s,
        "sys_s": r.sys_s,
        "peak_rss_mb": r.peak_rss_bytes / 1e6,
        "wait4_maxrss_mb": r.maxrss_bytes / 1e6,
        "loadavg_1m_at_end": os.getloadavg()[0],
        "git": git_version(),  # others change fpc while the suite runs
    }
    if tool.kind == "fpc":
        m = FPC_PACKETS_RE.search(r.stderr)
        row["packets_read"] = int(m.group(1)) if m else None
    return row


def summarize(plan: OfflinePlan, packets: int, wire_bytes: int) -> dict:
    """Medians per tool plus throughput and ratios of each fpc row to baselines."""
    tools = {}
    for tool in plan.tools:
        runs = plan.results[tool.label]
        wall = median([r["wall_s"] for r in runs])
        tools[tool.label] = {
            "kind": tool.kind,
            "args": list(tool.extra),
            "wall_s": wall,
            "cpu_s": median([r["cpu_s"] for r in runs]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "packets_per_s": ratio(packets, wall),
            "gbit_per_s": ratio(wire_bytes * 8, wall) / 1e9,
            "runs": runs,
        }
    return {
        "capture": plan.pcap,
        "packets": packets,
        "wire_bytes": wire_bytes,
        "repeats": plan.repeats,
        "warmup_rounds": WARMUP_ROUNDS,
        "tools": tools,
        "ratios": _ratios(tools),
    }


def _ratios(tools: dict[str, dict]) -> dict[str, dict[str, float]]:
    """fpc rows over tcpdump and argus; extra fpc rows also over the first one."""
    out = {}
    for label, t in tools.items():
        if t["kind"] != "fpc":
            continue
        bases = [*BASELINES, "fpc"] if label != "fpc" else BASELINES
        for base in bases:
            if base in tools:
                b = tools[base]
                out[f"{label}/{base}"] = {
                    "wall": ratio(t["wall_s"], b["wall_s"]),
                    "cpu": ratio(t["cpu_s"], b["cpu_s"]),
                }
    return out


def plan_from_args(args: argparse.Namespace, work_dir: str) -> OfflinePlan:
    """Build the plan from the command-line namespace of `bench.__main__`."""
    a = args
    pcap = a.pcap or mkpcap_capture(a.packets, a.seed, a.cache_dir)
    tools = [Tool("fpc", "fpc", tuple(a.fpc_args))]
    for label, extra in a.fpc_variants:
        tools.append(Tool(label, "fpc", tuple(extra)))
    tools += [Tool(name, name) for name in BASELINES]
    return OfflinePlan(pcap, tools, a.repeats, work_dir)


def render(summary: dict) -> str:
    """Markdown: one row per tool, then the ratios of each fpc row."""
    rows = []
    for label, t in summary["tools"].items():
        args = " ".join(t["args"]) or "-"
        rows.append([label, args, t["wall_s"], t["cpu_s"], t["packets_per_s"],
                     t["gbit_per_s"], t["peak_rss_mb"]])  # fmt: skip
    head = f"{summary['packets']:,} packets, {summary['wire_bytes'] / 1e9:.2f} GB, "
    head += f"median of {summary['repeats']} runs each\n\n"
    table = markdown_table(
        ["tool", "extra args", "wall s", "CPU s", "packets/s", "Gbit/s", "peak RSS MB"],
        rows,
    )
    ratio_rows = [[k, v["wall"], v["cpu"]] for k, v in summary["ratios"].items()]
    ratios = markdown_table(["ratio", "wall", "CPU"], ratio_rows)
    return head + table + "\n" + ratios


def plot(summary: dict, path: str) -> None:
    tools = summary["tools"]
    bar_plot(
        path,
        f"offline, {summary['packets']:,} packets",
        [
            ("wall s", {k: t["wall_s"] for k, t in tools.items()}),
            ("CPU s", {k: t["cpu_s"] for k, t in tools.items()}),
            ("peak RSS MB", {k: t["peak_rss_mb"] for k, t in tools.items()}),
        ],
    )
