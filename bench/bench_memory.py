"""Memory benchmark: bytes of capture-process RSS per idle active session.

For each size N two captures are ingested in fresh processes by
`bench.memory_child`: N UDP packets that each open a session (all within one
second, so none times out), and N packets of the same size that form only 16
sessions (the baseline: same reader, writer and batch buffers). The RSS
difference divided by the active sessions is the cost per session; the slope
between two sizes cross-checks it without any baseline.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from bench.captures import idle_sessions_capture
from bench.report import bar_plot, markdown_table
from bench.stats import REPO, ratio

logger = logging.getLogger(__name__)

TARGET_BYTES_PER_SESSION = 400
DEFAULT_MAX_SESSIONS = 1_000_000


def run_memory(sizes: list[int], cache_dir: str, work_dir: str) -> dict:
    """Measure every size; return per-size rows and the slope between them."""
    rows = []
    for n in sorted(sizes):
        distinct = _ingest(idle_sessions_capture(n, True, cache_dir), n, work_dir)
        few = _ingest(idle_sessions_capture(n, False, cache_dir), n, work_dir)
        extra = distinct["rss_end"] - few["rss_end"]
        per = ratio(extra, distinct["active_sessions"] - few["active_sessions"])
        rows.append({"sessions": n, "distinct": distinct, "baseline": few,
                     "bytes_per_session": per})  # fmt: skip
        logger.info(
            "memory sessions=%d active=%d rss_mb=%.0f baseline_rss_mb=%.0f "
            "bytes_per_session=%.0f ingest_s=%.1f",
            n, distinct["active_sessions"], distinct["rss_end"] / 1e6,
            few["rss_end"] / 1e6, per, distinct["ingest_s"],
        )  # fmt: skip
    return {"sizes": rows, "slope_bytes_per_session": _slope(rows),
            "target_bytes_per_session": TARGET_BYTES_PER_SESSION}  # fmt: skip


def _ingest(capture: str, n: int, work_dir: str) -> dict:
    data_dir = os.path.join(work_dir, "data")
    subprocess.run(["rm", "-rf", data_dir], check=True)
    max_sessions = max(DEFAULT_MAX_SESSIONS, n + 100)
    argv = [sys.executable, "-m", "bench.memory_child", capture, data_dir,
            str(max_sessions)]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    subprocess.run(["rm", "-rf", data_dir], check=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _slope(rows: list[dict]) -> float:
    """RSS growth per extra active session between the smallest and largest size."""
    if len(rows) < 2:
        return float("nan")
    a, b = rows[0]["distinct"], rows[-1]["distinct"]
    return ratio(
        b["rss_end"] - a["rss_end"], b["active_sessions"] - a["active_sessions"]
    )


def render(summary: dict) -> str:
    rows = []
    for r in summary["sizes"]:
        d, b = r["distinct"], r["baseline"]
        rows.append([r["sessions"], d["active_sessions"], d["evicted"],
                     d["rss_end"] / 1e6, b["rss_end"] / 1e6,
                     r["bytes_per_session"], d["ingest_s"]])  # fmt: skip
    table = markdown_table(
        ["packets", "active sessions", "evicted", "RSS MB",
         "baseline RSS MB (16 sessions)", "bytes/session", "ingest s"], rows,
    )  # fmt: skip
    slope = summary["slope_bytes_per_session"]
    largest = summary["sizes"][-1]
    per = largest["bytes_per_session"]
    lines = [
        f"- slope between sizes: {slope:,.0f} bytes/session",
        f"- 1,000,000 idle sessions would take about {per * 1e6 / 1e9:.2f} GB "
        f"(target {TARGET_BYTES_PER_SESSION} bytes/session = 0.40 GB): "
        + (
            "meets the target" if per <= TARGET_BYTES_PER_SESSION else "over the target"
        ),
        "- 1,000,000 sessions held at once without eviction: "
        + ("yes" if _holds_million(summary) else "not measured or no"),
    ]
    return table + "\n" + "\n".join(lines) + "\n"


def _holds_million(summary: dict) -> bool:
    return any(
        r["distinct"]["active_sessions"] >= 1_000_000 and r["distinct"]["evicted"] == 0
        for r in summary["sizes"]
    )


def plot(summary: dict, path: str) -> None:
    bars = {f"{r['sessions']:,}": r["bytes_per_session"] for r in summary["sizes"]}
    bars["slope"] = summary["slope_bytes_per_session"]
    bars["target"] = float(TARGET_BYTES_PER_SESSION)
    bar_plot(path, "RSS per idle active session", [("bytes per session", bars)])
