"""A data directory on a disk that fills up during the run: every loss is
counted, the summary is printed, the run exits 1, nothing crashes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from test_workers import summary

from conftest import MKPCAP

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_full_disk_counts_what_was_lost_and_exits_1(tmp_path, small_disk, workers):
    big = tmp_path / "big.pcap"
    subprocess.run([sys.executable, str(MKPCAP), "--packets", "40000", "--seed",
                    "5", "-o", str(big)], check=True, capture_output=True)  # fmt: skip
    data = small_disk("8m") / "d"  # a 28 MB capture cannot fit
    result = subprocess.run(
        [sys.executable, "-m", "fpc.cli", "-r", str(big), "--data-dir", str(data),
         "-q", "--workers", workers],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    s = summary(result.stderr)
    assert s["packets read"] == 40000
    assert s["NOT WRITTEN"] > 0
    assert s["PCAP packets"] + s["NOT WRITTEN"] == 40000
    with closing(sqlite3.connect(data / "fpc.sqlite")) as db:
        stored = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
    kept = 0
    unsaved = data / "unsaved-records.jsonl"
    if unsaved.exists():
        kept = len(unsaved.read_text().splitlines())
    # every record is stored, kept for later, or counted as lost
    lost = s.get("records LOST", 0)
    assert lost > 0
    assert stored + kept + lost == s["SPI records"]
