"""fpc-capture as a user runs it: flags, --print, summary, exit status, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dpkt
import pytest

from conftest import CORPUS, SAMPLES, wait_until
from fpc.workers import parse_workers

ROOT = Path(__file__).parents[1]


def capture(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpc.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def pcap_packets(directory: Path) -> Counter[bytes]:
    """Every packet in the PCAP files; with several workers (the default on a
    multi-core machine) each file is in capture order, not their sum."""
    out: Counter[bytes] = Counter()
    for path in sorted(directory.glob("*.pcap")):
        with open(path, "rb") as f:
            out.update(bytes(buf) for _ts, buf in dpkt.pcap.Reader(f))
    return out


def start_live(tmp_path: Path, *args: str, captures: int) -> subprocess.Popen:
    """fpc-capture with `args`, once its `captures` interface handles (one per
    worker) are open: the kernel keeps every packet for them from then on.
    Stdout is a pipe, stderr the file tmp_path/stderr.log."""
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fpc.cli", *args],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT,
        )  # fmt: skip

    def opened() -> bool:
        return log.read_text().count("capture started") >= captures

    wait_until(lambda: opened() or proc.poll() is not None, "capture started")
    assert proc.poll() is None, log.read_text()
    return proc


def count_pcap_packets(directory: Path) -> int:
    """Packets in the PCAP files of a running writer; -1 while one is caught
    part-way through a write."""
    try:
        return pcap_packets(directory).total()
    except (dpkt.Error, ValueError):
        return -1


def test_capture_print_writes_one_record_per_line_with_its_id(tmp_path):
    sample = SAMPLES / "mixed-3000.pcap"
    result = capture("-r", str(sample), "--data-dir", str(tmp_path), "--node", "n1",
                     "--print")  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and all(r["event"]["id"].startswith("n1-") for r in records)
    assert sum(r["network"]["packets"] for r in records) == 3000
    assert "packets read               3000" in result.stderr
    assert "sessions" in result.stderr and "PCAP files" in result.stderr
    with open(sample, "rb") as f:
        source = Counter(bytes(buf) for _ts, buf in dpkt.pcap.Reader(f))
    assert pcap_packets(tmp_path / "pcap") == source


def test_capture_trailing_expression_filters_like_tcpdump(tmp_path):
    result = capture("-r", str(SAMPLES / "mixed-3000.pcap"), "--data-dir",
                     str(tmp_path), "--print", "udp", "port", "53")  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records
    assert {r["network"]["transport"] for r in records} == {"udp"}
    assert {r["destination"]["port"] for r in records} == {53}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_capture_directory_with_a_corrupt_file_keeps_the_rest(tmp_path, workers):
    src = tmp_path / "in"
    src.mkdir()
    good = (CORPUS / "arkime" / "http-301-get.pcap").read_bytes()
    (src / "a-good.pcap").write_bytes(good)
    (src / "b-cut.pcap").write_bytes(good[:-10])
    result = capture("-r", str(src), "--data-dir", str(tmp_path / "d"), "--print",
                     "--workers", workers)  # fmt: skip
    assert result.returncode == 1
    # every worker reads the file; the damage is reported once
    assert result.stderr.count("b-cut.pcap is corrupt at byte") == 1
    with open(src / "a-good.pcap", "rb") as f:
        n = sum(1 for _ in dpkt.pcap.Reader(f))
    # all of the good file, and every complete record of the cut one
    assert pcap_packets(tmp_path / "d" / "pcap").total() == 2 * n - 1


def test_capture_config_file_and_bad_values(tmp_path):
    conf = tmp_path / "fpc.toml"
    conf.write_text('node = "fromfile"\n[writer]\nmax_file_size = "64K"\n')
    result = capture("-c", str(conf), "-r", str(SAMPLES / "mixed-3000.pcap"),
                     "--data-dir", str(tmp_path / "d"), "--print")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[0])["observer"]["name"] == "fromfile"
    assert len(list((tmp_path / "d" / "pcap").glob("*.pcap"))) > 5  # rotated by size
    conf.write_text("[writer]\nmax_file_size = 5\n")
    bad = capture("-c", str(conf), "-r", str(SAMPLES / "mixed-3000.pcap"))
    assert bad.returncode == 2
    assert "max_file_size = 5 is out of range" in bad.stderr


def test_capture_config_that_is_no_toml_file_exits_2(tmp_path):
    sample = str(SAMPLES / "mixed-3000.pcap")
    binary = capture("-c", sample, "-r", sample, "--data-dir", str(tmp_path))
    assert binary.returncode == 2
    assert "mixed-3000.pcap is not a TOML config" in binary.stderr
    assert "Traceback" not in binary.stderr
    folder = capture("-c", str(tmp_path), "-r", sample, "--data-dir", str(tmp_path))
    assert folder.returncode == 2
    assert "cannot read config file" in folder.stderr


def test_capture_es_url_of_another_scheme_exits_2(tmp_path):
    sample = str(SAMPLES / "mixed-3000.pcap")
    result = capture("--es", "ftp://x", "-r", sample, "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "url = 'ftp://x': the scheme must be http or https" in result.stderr


def test_capture_missing_input_is_a_clear_error(tmp_path):
    result = capture("-r", str(tmp_path / "nope.pcap"), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "nope.pcap" in result.stderr


@pytest.mark.live
def test_capture_live_sigterm_flushes_sessions_and_files(veth_pair, tmp_path):
    source = CORPUS / "other" / "zeek-smtp.pcap"
    with open(source, "rb") as f:
        sent = Counter(bytes(buf) for _ts, buf in dpkt.pcap.Reader(f))
    proc = start_live(tmp_path, "-i", veth_pair.host, "--data-dir", str(tmp_path),
                      "--print", captures=parse_workers("auto", live=True))  # fmt: skip
    veth_pair.run_in_netns("tcpreplay", f"--intf1={veth_pair.peer}", "--pps=1000",
                           str(source))  # fmt: skip
    pcap_dir = tmp_path / "pcap"
    wait_until(lambda: count_pcap_packets(pcap_dir) == sent.total(), "packets written")
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    err = (tmp_path / "stderr.log").read_text()
    assert time.monotonic() - started < 10
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert pcap_packets(pcap_dir) == sent
    assert sum(r["network"]["packets"] for r in records) == sent.total()
    assert "dropped=0" in err


@pytest.mark.live
def test_capture_live_idle_interface_stops_on_sigint(veth_pair, tmp_path):
    proc = start_live(tmp_path, "-i", veth_pair.host, "--data-dir", str(tmp_path),
                      captures=parse_workers("auto", live=True))  # fmt: skip
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    proc.communicate(timeout=20)
    err = (tmp_path / "stderr.log").read_text()
    assert time.monotonic() - started < 5
    assert proc.returncode == 0, err
    assert "packets read                  0" in err


def test_capture_several_files_before_the_filter_expression(tmp_path):
    a = CORPUS / "arkime" / "dns-udp.pcap"
    b = CORPUS / "arkime" / "http-301-get.pcap"
    result = capture(
        "-r", str(a), str(b), "tcp", "--data-dir", str(tmp_path), "--print"
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {r["network"]["transport"] for r in records} == {"tcp"}
    assert "reading capture file path=" + str(b) in result.stderr


def test_capture_bad_filter_stops_before_reading(tmp_path):
    result = capture("-r", str(SAMPLES / "mixed-3000.pcap"), "--data-dir",
                     str(tmp_path), "tcp", "prot", "80")  # fmt: skip
    assert result.returncode == 2
    assert "BPF filter 'tcp prot 80' does not compile" in result.stderr
    assert not (tmp_path / "pcap").exists()


def test_capture_filter_leaves_out_link_types_it_cannot_filter(tmp_path):
    nflog = CORPUS / "arkime" / "nflog.pcap"
    http = CORPUS / "arkime" / "http-301-get.pcap"
    result = capture("-r", str(nflog), str(http), "--data-dir", str(tmp_path),
                     "--print", "tcp")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "does not compile for link type 239" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    with open(http, "rb") as f:
        assert sum(r["network"]["packets"] for r in records) == sum(
            1 for _ in dpkt.pcap.Reader(f)
        )


def test_capture_filter_words_that_exist_on_disk_stay_the_filter(tmp_path):
    (tmp_path / "tcp").mkdir()  # a directory named like a filter word
    result = subprocess.run(
        [sys.executable, "-m", "fpc.cli", "-r", str(SAMPLES / "mixed-3000.pcap"),
         "--data-dir", str(tmp_path / "d"), "--print", "tcp"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "'tcp' exists on disk but is read as part of the BPF filter" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and {r["network"]["transport"] for r in records} == {"tcp"}


def test_capture_filter_given_twice_is_refused(tmp_path):
    result = capture("-r", str(SAMPLES / "mixed-3000.pcap"), "--data-dir",
                     str(tmp_path), "--bpf", "udp", "tcp")  # fmt: skip
    assert result.returncode == 2
    assert "a BPF filter both in --bpf ('udp') and after the options ('tcp')" in (
        result.stderr
    )
