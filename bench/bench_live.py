"""Live benchmark: fpc-capture -i and tcpdump -i on a veth pair fed by tcpreplay.

A veth pair is created with its peer end in a new network namespace
(`tests/netns.py`); tcpreplay sends a mkpcap capture out of the peer at rising
rates while the tool under test captures on the host end. Per run we keep
what tcpreplay sent, what the tool captured and dropped, and the CPU seconds
the tool spent from the moment it was ready until it exited (start-up is left
out, the final flush is in). The tools take turns at every rate.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench.captures import mkpcap_capture, warm_page_cache
from bench.measure import Child
from bench.report import line_plot, markdown_table
from bench.stats import REPO, median, ratio
from fpc.config import AUTO_BUFFER, AUTO_WORKERS, fit_buffer_mb, fit_workers

logger = logging.getLogger(__name__)

TOOLS = ("fpc", "tcpdump")
READY_MARKERS = {"fpc": "capture started", "tcpdump": "listening on"}
# fpc with workers logs this first, then each worker its own "capture started".
FPC_WORKERS_RE = re.compile(r"starting workers count=(\d+)")
READY_TIMEOUT_S = 60.0
SETTLE_IDLE_S = 0.02  # CPU seconds per poll below which the tool counts as idle
SETTLE_POLL_S = 0.5
SETTLE_MAX_S = 60.0
# libpcap hands packets over in ring blocks that close on a timeout; waiting
# this long after the CPU goes quiet lets the last partial block through.
GRACE_S = 2.0
FPC_PAIR_RE = re.compile(r"(\w+)=(\d+)\b")
FPC_READ_RE = re.compile(r"^packets read\s+(\d+)", re.MULTILINE)
TCPDUMP_RE = {
    "captured": re.compile(r"(\d+) packets? captured"),
    "received": re.compile(r"(\d+) packets? received by filter"),
    "dropped": re.compile(r"(\d+) packets? dropped by kernel"),
}
REPLAY_RE = {
    "sent": re.compile(r"Successful packets:\s+(\d+)"),
    "failed": re.compile(r"Failed packets:\s+(\d+)"),
    "pps": re.compile(r"Rated:.*?([\d.]+) pps"),
}


@dataclass
class LivePlan:
    pcap: str
    rates: list[str]  # packets/s as text, or "top"
    repeats: int
    work_dir: str
    fpc_args: list[str]
    loops: int = 1  # tcpreplay --loop: longer sends, so buffers cannot hide a lag
    runs: list[dict] = field(default_factory=list)


def _netns_module() -> Any:
    """tests/netns.py, which builds and always removes the veth pair."""
    tests_dir = os.path.join(REPO, "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    import netns  # type: ignore[import-not-found]

    return netns


def run_live(plan: LivePlan) -> dict:
    """Every rate, every tool in turn, on one veth pair; return the summary."""
    # TODO: tcpreplay, the capture tool and everything else on the machine
    # share its 2 cores; pinning them to separate cores (taskset) would steady
    # the highest clean rate, but this machine has no core to spare for that.
    warm_page_cache(plan.pcap)
    netns = _netns_module()
    with netns.create_veth_pair() as pair:
        logger.info("veth pair host=%s peer=%s netns=%s", *_names(pair))
        for rate in plan.rates:
            for _ in range(plan.repeats):
                for tool in TOOLS:
                    run = _run_once(tool, rate, pair, plan)
                    plan.runs.append(run)
                    _log_run(run)
    return summarize(plan)


def _names(pair: Any) -> tuple[str, str, str]:
    return pair.host, pair.peer, pair.netns


def capture_argv(tool: str, iface: str, out_dir: str, fpc_args: list[str]) -> list[str]:
    if tool == "fpc":
        cli = [sys.executable, "-m", "fpc.cli", "-i", iface, "--data-dir", out_dir]
        return [*cli, *fpc_args]
    out = os.path.join(out_dir, "out.pcap")
    return ["tcpdump", "-n", "-i", iface, "-B", str(tcpdump_buffer_kib()), "-Z", "root",
            "-w", out]  # fmt: skip


def tcpdump_buffer_kib() -> int:
    """As much kernel buffer as fpc's default gives all its live workers."""
    workers = fit_workers(AUTO_WORKERS, live=True)
    return fit_buffer_mb(AUTO_BUFFER, workers) * workers * 1024


def _run_once(tool: str, rate: str, pair: Any, plan: LivePlan) -> dict:
    out_dir = os.path.join(plan.work_dir, tool)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    child = Child(capture_argv(tool, pair.host, out_dir, plan.fpc_args), cwd=REPO)
    try:
        _wait_ready(child, tool)
        cpu_ready = child.cpu_so_far()
        replay = replay_capture(pair, plan.pcap, rate, plan.loops)
        _wait_idle(child)
    finally:
        child.signal()
        result = child.wait(timeout_s=300)
        shutil.rmtree(out_dir, ignore_errors=True)
    counts = parse_capture_counts(tool, result.stderr)
    cpu = result.cpu_s - cpu_ready
    return {"tool": tool, "rate": rate, **replay, **counts, "capture_cpu_s": cpu,
            "cpu_us_per_packet": ratio(cpu, counts["captured"]) * 1e6,
            "returncode": result.returncode,
            "clean": _clean(replay, counts)}  # fmt: skip


def is_ready(tool: str, stderr: str) -> bool:
    """Whether every capturing process of `tool` has said it captures: the CPU
    a second worker spends starting (its ring is allocated then) is start-up."""
    if tool != "fpc":
        return READY_MARKERS[tool] in stderr
    workers = FPC_WORKERS_RE.search(stderr)
    wanted = int(workers.group(1)) if workers else 1
    return stderr.count(READY_MARKERS[tool]) >= wanted


def _wait_ready(child: Child, tool: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not is_ready(tool, child.stderr_so_far()):
        if child.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{tool} did not start capturing within {READY_TIMEOUT_S:.0f} s: "
                f"{child.stderr_so_far().strip()[-2000:]}"
            )
        time.sleep(0.05)


def _wait_idle(child: Child) -> None:
    """Wait until the tool has worked through its backlog (CPU use stops)."""
    deadline = time.monotonic() + SETTLE_MAX_S
    last = child.cpu_so_far()
    while time.monotonic() < deadline:
        time.sleep(SETTLE_POLL_S)
        now = child.cpu_so_far()
        if now - last < SETTLE_IDLE_S:
            time.sleep(GRACE_S)
            return
        last = now
    logger.warning("capture still busy after %.0f s; stopping it", SETTLE_MAX_S)


def replay_capture(pair: Any, pcap: str, rate: str, loops: int = 1) -> dict:
    """Send `pcap` `loops` times from the peer end; what tcpreplay says it sent."""
    speed = "--topspeed" if rate == "top" else f"--pps={rate}"
    peer = pair.peer
    argv = ["tcpreplay", f"--intf1={peer}", speed, f"--loop={loops}", pcap]
    done = pair.run_in_netns(*argv, timeout_s=600)
    found = {k: rx.search(done.stdout) for k, rx in REPLAY_RE.items()}
    if found["sent"] is None:
        raise RuntimeError(f"cannot parse tcpreplay output: {done.stdout[-1000:]}")
    return {
        "sent": int(found["sent"].group(1)),
        "send_failed": int(found["failed"].group(1)) if found["failed"] else 0,
        "achieved_pps": float(found["pps"].group(1)) if found["pps"] else float("nan"),
    }


def parse_capture_counts(tool: str, stderr: str) -> dict:
    """captured / dropped / interface_dropped from the tool's stderr."""
    if tool == "fpc":
        return _fpc_counts(stderr)
    counts = {"interface_dropped": 0}
    for key, rx in TCPDUMP_RE.items():
        m = rx.search(stderr)
        if m is None:
            raise RuntimeError(f"cannot parse tcpdump summary: {stderr[-2000:]}")
        counts[key] = int(m.group(1))
    return counts


def _fpc_counts(stderr: str) -> dict:
    """The summary's `packets read` and the sums of the key=value pairs of
    the `capture stopped` lines (one per worker)."""
    read = FPC_READ_RE.search(stderr)
    stopped = [ln for ln in stderr.splitlines() if "capture stopped" in ln]
    if read is None or not stopped:
        raise RuntimeError(f"cannot parse fpc summary: {stderr[-2000:]}")
    counts = {"captured": int(read.group(1)), "workers_stopped": len(stopped)}
    for line in stopped:
        pairs = dict(FPC_PAIR_RE.findall(line))
        for key in ("received", "dropped", "interface_dropped", "ring_dropped"):
            if key not in pairs:
                raise RuntimeError(f"no {key} count in fpc line: {line}")
            counts[key] = counts.get(key, 0) + int(pairs[key])
    # lost between libpcap and the pipeline (a full ring at the stop) is lost
    counts["kernel_dropped"] = counts["dropped"]
    counts["dropped"] += counts["ring_dropped"]
    return counts


def _clean(replay: dict, counts: dict) -> bool:
    no_drops = counts["dropped"] == 0 and counts["interface_dropped"] == 0
    return no_drops and counts["captured"] >= replay["sent"]


def _log_run(run: dict) -> None:
    logger.info(
        "live tool=%s rate=%s achieved_pps=%.0f sent=%d captured=%d dropped=%d "
        "cpu_s=%.2f cpu_us_per_packet=%.2f",
        run["tool"], run["rate"], run["achieved_pps"], run["sent"], run["captured"],
        run["dropped"], run["capture_cpu_s"], run["cpu_us_per_packet"],
    )  # fmt: skip


def summarize(plan: LivePlan) -> dict:
    """Per rate and tool: medians, drops, clean or not; highest clean rate."""
    per_rate = []
    for rate in plan.rates:
        row: dict = {"rate": rate}
        for tool in TOOLS:
            runs = [r for r in plan.runs if r["rate"] == rate and r["tool"] == tool]
            row[tool] = {
                "achieved_pps": median([r["achieved_pps"] for r in runs]),
                "sent": sum(r["sent"] for r in runs),
                "captured": sum(r["captured"] for r in runs),
                "dropped": sum(r["dropped"] + r["interface_dropped"] for r in runs),
                "cpu_us_per_packet": median([r["cpu_us_per_packet"] for r in runs]),
                "clean": all(r["clean"] for r in runs),
            }
        row["cpu_ratio_fpc_tcpdump"] = ratio(
            row["fpc"]["cpu_us_per_packet"], row["tcpdump"]["cpu_us_per_packet"]
        )
        per_rate.append(row)
    return {
        "capture": plan.pcap,
        "repeats": plan.repeats,
        "fpc_args": plan.fpc_args,
        "loops": plan.loops,
        "rates": per_rate,
        "highest_clean": {t: _highest_clean(per_rate, t) for t in TOOLS},
        "runs": plan.runs,
    }


def _highest_clean(per_rate: list[dict], tool: str) -> dict | None:
    """The clean rate with the most packets/s achieved (`top` may achieve less)."""
    clean = [r for r in per_rate if r[tool]["clean"]]
    if not clean:
        return None
    best = max(clean, key=lambda r: r[tool]["achieved_pps"])
    return {"rate": best["rate"], "achieved_pps": best[tool]["achieved_pps"]}


def render(summary: dict) -> str:
    rows = []
    for r in summary["rates"]:
        f, t = r["fpc"], r["tcpdump"]
        rows.append([r["rate"], f["achieved_pps"], f"{f['captured']:,}/{f['sent']:,}",
                     f["dropped"], f["cpu_us_per_packet"],
                     f"{t['captured']:,}/{t['sent']:,}", t["dropped"],
                     t["cpu_us_per_packet"], r["cpu_ratio_fpc_tcpdump"]])  # fmt: skip
    table = markdown_table(
        ["rate asked", "pps achieved", "fpc captured/sent", "fpc dropped",
         "fpc CPU µs/pkt", "tcpdump captured/sent", "tcpdump dropped",
         "tcpdump CPU µs/pkt", "CPU/pkt fpc/tcpdump"], rows,
    )  # fmt: skip
    best = []
    for tool, h in summary["highest_clean"].items():
        text = "none" if h is None else f"{h['rate']} ({h['achieved_pps']:,.0f} pps)"
        best.append(f"- highest rate with no loss, {tool}: {text}")
    n = summary["runs"][0]["sent"] if summary["runs"] else 0
    head = f"{n:,} packets replayed per run ({summary.get('loops', 1)} loop(s) of "
    head += f"the capture), {summary['repeats']} run(s) per rate"
    return head + "\n\n" + table + "\n" + "\n".join(best) + "\n"


def plot(summary: dict, path: str) -> None:
    cpu: dict[str, list[float]] = {t: [] for t in TOOLS}
    loss: dict[str, list[float]] = {t: [] for t in TOOLS}
    for r in summary["rates"]:
        for t in TOOLS:
            lost = max(r[t]["sent"] - r[t]["captured"], 0) + r[t]["dropped"]
            cpu[t].append(r[t]["cpu_us_per_packet"])
            loss[t].append(100.0 * ratio(lost, r[t]["sent"]))
    line_plot(
        path,
        "live capture on a veth pair",
        [r["rate"] for r in summary["rates"]],
        [("capture CPU µs per packet", True, cpu), ("% packets lost", False, loss)],
    )


def plan_from_args(args: argparse.Namespace, work_dir: str) -> LivePlan:
    a = args
    pcap = mkpcap_capture(a.live_packets, a.seed, a.cache_dir)
    rates = [r.strip() for r in a.rates.split(",") if r.strip()]
    repeats, loops = a.live_repeats, a.live_loops
    return LivePlan(pcap, rates, repeats, work_dir, list(a.fpc_args), loops)
