"""fpc-capture --print into a pipe that its reader closes early."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from test_workers import summary

from conftest import SAMPLES

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_print_into_a_closed_pipe_still_stores_every_record(tmp_path, workers):
    sample = str(SAMPLES / "mixed-3000.pcap")
    argv = [sys.executable, "-m", "fpc.cli", "-r", sample, "--data-dir",
            str(tmp_path), "-q", "--print", "--workers", workers]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # as `| head -1` does: one line, then gone
    proc.stdout.close()
    _out, err = proc.communicate(timeout=120)
    text = err.decode()
    assert proc.returncode == 0, text
    assert "Traceback" not in text
    assert "records are no longer printed" in text
    with closing(sqlite3.connect(tmp_path / "fpc.sqlite")) as db:
        stored = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    assert stored == summary(text)["SPI records"] > 100
