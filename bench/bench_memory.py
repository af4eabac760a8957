"""Memory benchmark: bytes of capture-process RSS per idle active session.

For each size N two captures are ingested in fresh processes by
`bench.memory_child`: N UDP packets that each open a session (all within one
second, so none times out), and N packets of the same size that form only 16
sessions (the baseline: same reader, writer and batch buffers). The RSS
difference divided by the active sessions is the cost per session; the slope
between two sizes cross-checks it without any baseline. Each size is measured
with application-layer parsing on (the default) and, if asked, off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

from bench.captures import idle_sessions_capture
from bench.report import bar_plot, markdown_table
from bench.stats import REPO, ratio

logger = logging.getLogger(__name__)

TARGET_BYTES_PER_SESSION = 400
DEFAULT_MAX_SESSIONS = 1_000_000
APP_LAYER_MODES = {"on": True, "off": False}


def run_memory(
    sizes: list[int], cache_dir: str, work_dir: str, modes: list[str] | None = None
) -> dict:
    """Measure every size in every app-layer mode; rows and slopes per mode."""
    out = {}
    for mode in modes or ["on"]:
        rows = [_measure_size(n, mode, cache_dir, work_dir) for n in sorted(sizes)]
        out[mode] = {"sizes": rows, "slope_bytes_per_session": _slope(rows)}
    return {"app_layer": out, "target_bytes_per_session": TARGET_BYTES_PER_SESSION}


def _measure_size(n: int, mode: str, cache_dir: str, work_dir: str) -> dict:
    app = APP_LAYER_MODES[mode]
    distinct = _ingest(idle_sessions_capture(n, True, cache_dir), n, app, work_dir)
    few = _ingest(idle_sessions_capture(n, False, cache_dir), n, app, work_dir)
    extra = distinct["rss_end"] - few["rss_end"]
    per = ratio(extra, distinct["active_sessions"] - few["active_sessions"])
    logger.info(
        "memory app_layer=%s sessions=%d active=%d rss_mb=%.0f baseline_rss_mb=%.0f "
        "bytes_per_session=%.0f ingest_s=%.1f",
        mode, n, distinct["active_sessions"], distinct["rss_end"] / 1e6,
        few["rss_end"] / 1e6, per, distinct["ingest_s"],
    )  # fmt: skip
    return {"sessions": n, "distinct": distinct, "baseline": few,
            "bytes_per_session": per}  # fmt: skip


def _ingest(capture: str, n: int, app_layer: bool, work_dir: str) -> dict:
    data_dir = os.path.join(work_dir, "data")
    shutil.rmtree(data_dir, ignore_errors=True)
    max_sessions = max(DEFAULT_MAX_SESSIONS, n + 100)
    argv = [sys.executable, "-m", "bench.memory_child", capture, data_dir,
            str(max_sessions), "on" if app_layer else "off"]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    shutil.rmtree(data_dir, ignore_errors=True)
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
    for mode, m in summary["app_layer"].items():
        for r in m["sizes"]:
            d, b = r["distinct"], r["baseline"]
            rows.append([mode, r["sessions"], d["active_sessions"], d["evicted"],
                         d.get("app_states", "n/a"), d["rss_end"] / 1e6,
                         b["rss_end"] / 1e6, r["bytes_per_session"],
                         d["ingest_s"]])  # fmt: skip
    table = markdown_table(
        ["app layer", "packets", "active sessions", "evicted", "app states held",
         "RSS MB", "baseline RSS MB (16 sessions)", "bytes/session", "ingest s"],
        rows,
    )  # fmt: skip
    lines = [_verdict(mode, m) for mode, m in summary["app_layer"].items()]
    return table + "\n" + "\n".join(lines) + "\n"


def _verdict(mode: str, m: dict) -> str:
    per = m["sizes"][-1]["bytes_per_session"]
    held = any(
        r["distinct"]["active_sessions"] >= 1_000_000 and r["distinct"]["evicted"] == 0
        for r in m["sizes"]
    )
    meets = "meets" if per <= TARGET_BYTES_PER_SESSION else "over"
    return (
        f"- app layer {mode}: {per:,.0f} bytes/session at the largest size "
        f"(slope {m['slope_bytes_per_session']:,.0f}), {meets} the target of "
        f"{TARGET_BYTES_PER_SESSION}; 1,000,000 idle sessions take about "
        f"{per * 1e6 / 1e9:.2f} GB; 1 M sessions held without eviction: "
        + ("yes" if held else "not measured")
    )


def plot(summary: dict, path: str) -> None:
    bars = {}
    for mode, m in summary["app_layer"].items():
        for r in m["sizes"]:
            bars[f"{r['sessions'] // 1000}k app {mode}"] = r["bytes_per_session"]
    bars["target"] = float(TARGET_BYTES_PER_SESSION)
    bar_plot(path, "RSS per idle active session", [("bytes per session", bars)])
