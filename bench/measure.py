"""Run one command in a fresh subprocess and measure it: wall, CPU and peak RSS.

CPU seconds and `maxrss` come from `os.wait4` on the child, so they cover the
child and every descendant it waited for (worker processes included). Peak
RSS comes from a psutil poller that sums the RSS of the whole process tree
every 50 ms: `ru_maxrss` would add no workers up, and it starts at the size of
the forked Python parent (about 50 MB) before the exec, which hides a small
tool such as tcpdump.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

logger = logging.getLogger(__name__)

POLL_S = 0.05
DEFAULT_TIMEOUT_S = 3600.0


@dataclass
class RunResult:
    """What one run of a command cost and what it printed."""

    argv: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int  # polled sum over the process tree
    maxrss_bytes: int  # wait4 ru_maxrss: at least the forked parent's size
    stdout: str
    stderr: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


class TreeRssPoller:
    """Polls the RSS sum of a process and its descendants on a thread."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process(pid)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.peak = max(self.peak, _tree_rss(self._proc))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _tree_rss(proc: psutil.Process) -> int:
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


class Child:
    """A started command whose resource use is collected with `wait4`."""

    def __init__(self, argv: list[str], cwd: str | None = None) -> None:
        self.argv = argv
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.poller = TreeRssPoller(self.proc.pid)
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            _drain_thread(self.proc.stdout, self._out),
            _drain_thread(self.proc.stderr, self._err),
        ]

    def stderr_so_far(self) -> str:
        return "".join(self._err)

    def cpu_so_far(self) -> float:
        """User+sys seconds of the process tree up to now (psutil)."""
        try:
            procs = [self.proc, *psutil.Process(self.proc.pid).children(True)]
        except psutil.Error:
            return 0.0
        total = 0.0
        for p in procs:
            try:
                t = psutil.Process(p.pid).cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def signal(self, signum: int = signal.SIGINT) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signum)

    def wait(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> RunResult:
        """Reap the child (killing it after `timeout_s`) and return its costs."""
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                logger.error("command timed out, killing argv=%s", self.argv)
                os.killpg(self.proc.pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.01)
        wall = time.monotonic() - self.started
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        peak = self.poller.stop()
        for t in self._readers:
            t.join()
        return RunResult(
            self.argv, self.proc.returncode, wall, usage.ru_utime, usage.ru_stime,
            peak, usage.ru_maxrss * 1024, "".join(self._out), "".join(self._err),
        )  # fmt: skip


def _drain_thread(stream: object, sink: list[str]) -> threading.Thread:
    def loop() -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def run_measured(
    argv: list[str], cwd: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> RunResult:
    """Run `argv` to completion and return its costs."""
    return Child(argv, cwd).wait(timeout_s)
