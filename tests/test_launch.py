"""Console entry points: Ctrl-C while the modules load ends quietly (130)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_sigint_while_modules_load_exits_130_without_a_traceback(tmp_path):
    # a module that is interrupted while it loads, as a slow import would be
    (tmp_path / "slowmod.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "time.sleep(30)\n"
        "def main():\n    return 0\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom fpc.launch import _run\n"
         "sys.exit(_run('slowmod'))"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 130
    assert result.stderr == ""
    assert time.monotonic() - started < 20


def test_entry_points_run_the_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom fpc.launch import capture\n"
         "sys.argv = ['fpc-capture', '--help']\nsys.exit(capture())"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0
    assert "usage: fpc-capture" in result.stdout
