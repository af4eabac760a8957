"""One capture per node and PCAP directory (fpc.caplock)."""

from __future__ import annotations

import os

from test_cli import capture

from conftest import SAMPLES
from fpc.caplock import CaptureLock

SAMPLE = str(SAMPLES / "mixed-3000.pcap")


def test_second_capture_of_a_node_refuses_and_leaves_its_files_alone(tmp_path):
    pcap_dir = tmp_path / "pcap"
    pcap_dir.mkdir()
    # the newest file of node n, its last record still being written: a
    # starting capture would cut it back to the last whole record
    busy = pcap_dir / "n-000001-20240101-000000.pcap"
    busy.write_bytes((SAMPLES / "mixed-3000.pcap").read_bytes()[:5000])
    with CaptureLock(str(pcap_dir), "n"):
        result = capture("-r", SAMPLE, "--data-dir", str(tmp_path), "--node", "n")
        assert result.returncode == 1
        assert f"another fpc-capture (pid {os.getpid()})" in result.stderr
        assert "node n" in result.stderr
        assert busy.stat().st_size == 5000
        other = capture("-r", SAMPLE, "--data-dir", str(tmp_path), "--node", "m")
        assert other.returncode == 0, other.stderr
    after = capture("-r", SAMPLE, "--data-dir", str(tmp_path), "--node", "n")
    assert after.returncode == 0, after.stderr
    assert busy.stat().st_size < 5000  # repaired once nobody writes it


def test_capture_lock_is_released_for_the_next_run(tmp_path):
    lock = CaptureLock(str(tmp_path / "p"), "n")
    with lock:
        assert (tmp_path / "p" / ".n.lock").read_text().strip() == str(os.getpid())
    with CaptureLock(str(tmp_path / "p"), "n"):
        pass
