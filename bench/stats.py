"""Small helpers shared by the benchmark parts: capture counts, medians, host facts."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def capture_counts(path: str) -> tuple[int, int]:
    """(packets, wire bytes) of a capture file, read with fpc's own reader."""
    from fpc.reader import open_capture

    packets = wire_bytes = 0
    with open_capture(path) as capture:
        for batch in capture.batches(max_packets=65536, max_bytes=64 << 20):
            packets += len(batch)
            wire_bytes += int(batch.wirelen.sum())
    return packets, wire_bytes


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def host_facts() -> dict[str, object]:
    """What the numbers depend on: machine, load, versions, commit."""
    return {
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "loadavg_when_done": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": git_version(),
        "tcpdump": _first_line(["tcpdump", "--version"]),
        "argus": _first_line(["argus", "-h"]),
        "tcpreplay": _first_line(["tcpreplay", "--version"]),
    }


def git_version() -> str:
    """HEAD of the working tree, with -dirty when files differ from it."""
    return _output(["git", "-C", REPO, "describe", "--always", "--dirty"])


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return (done.stdout or done.stderr).strip()


def _first_line(argv: list[str]) -> str:
    lines = _output(argv).splitlines()
    return lines[0] if lines else ""
