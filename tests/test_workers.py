"""fpc-capture --workers N: the same sessions and packets as one process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dpkt
import numpy as np
import pytest
from test_cli import count_pcap_packets, start_live

from conftest import CORPUS, MKPCAP, SAMPLES, wait_until
from fpc.cli import build_parser, config_from_args
from fpc.config import AUTO_WORKERS, load_config
from fpc.decode import decode_batch
from fpc.reader import open_capture
from fpc.workers import Router, merge_summaries, parse_workers

ROOT = Path(__file__).parents[1]
SUMMARY_RE = re.compile(r"^([A-Za-z() -]+?)\s{2,}(\d+)", re.M)
ID_POSITION_RE = re.compile(r"-\d+-\d+(?=-[0-9a-f]+-[0-9a-f]{8}(\.\d+)?$)")


def capture(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fpc.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def pcap_packets(directory: Path) -> Counter[tuple[float, bytes]]:
    out: Counter[tuple[float, bytes]] = Counter()
    for path in sorted(directory.glob("*.pcap")):
        with open(path, "rb") as f:
            out.update((ts, bytes(buf)) for ts, buf in dpkt.pcap.Reader(f))
    return out


def summary(stderr: str) -> dict[str, int]:
    return {name: int(n) for name, n in SUMMARY_RE.findall(stderr)}


def sessions(stdout: str) -> Counter[tuple[str, int, int]]:
    """(id, packets, bytes) of each record. Ids name the file number and
    position of the first packet, which differ with the worker that wrote
    it; the rest of the id (node, first time, key hash, segment) must match."""
    records = [json.loads(line) for line in stdout.splitlines()]
    return Counter(
        (ID_POSITION_RE.sub("", r["event"]["id"]), r["network"]["packets"],
         r["network"]["bytes"])
        for r in records
    )  # fmt: skip


def run_both(tmp_path: Path, inputs: list[str]) -> tuple[dict, dict]:
    runs = {}
    for n in (1, 2):
        d = tmp_path / f"w{n}"
        result = capture("-r", *inputs, "-R", "--data-dir", str(d), "--node", "n",
                         "--print", "-q", "--workers", str(n))  # fmt: skip
        runs[n] = {"result": result, "dir": d, "summary": summary(result.stderr)}
    return runs[1], runs[2]


@pytest.mark.parametrize(
    "inputs",
    [
        [str(SAMPLES / "mixed-3000.pcap")],
        [str(CORPUS / "arkime")],
        [str(CORPUS / "other")],
    ],
    ids=["mixed-3000", "corpus-arkime", "corpus-other"],
)
def test_workers_two_give_the_sessions_and_packets_of_one(tmp_path, inputs):
    one, two = run_both(tmp_path, inputs)
    assert one["result"].returncode == two["result"].returncode
    assert sessions(two["result"].stdout) == sessions(one["result"].stdout)
    ids = [
        json.loads(line)["event"]["id"] for line in two["result"].stdout.splitlines()
    ]
    assert len(set(ids)) == len(ids)  # no two workers gave one id
    assert pcap_packets(two["dir"] / "pcap") == pcap_packets(one["dir"] / "pcap")
    s1, s2 = one["summary"], two["summary"]
    for key in ("packets read", "bytes read", "in sessions", "non-IP frames",
                "malformed", "unsupported link", "sessions", "SPI records",
                "PCAP packets"):  # fmt: skip
        assert s2[key] == s1[key], key
    # conservation: every packet read is written once and accounted once
    assert (
        s2["PCAP packets"]
        == s2["packets read"]
        == sum(
            s2[k]
            for k in (
                "in sessions",
                "non-IP frames",
                "malformed",
                "unsupported link",
            )  # fmt: skip
        )
    )
    assert s2["PCAP files"] >= 2  # each worker has its own files


def test_workers_file_numbers_never_collide(tmp_path):
    result = capture("-r", str(SAMPLES / "mixed-3000.pcap"), "--data-dir",
                     str(tmp_path), "--node", "n", "--max-file-size", "64K",
                     "--workers", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = [p.name for p in (tmp_path / "pcap").glob("*.pcap")]
    numbers = [int(name.split("-")[1]) for name in names]
    assert len(names) >= 8
    assert sorted(numbers) == list(range(1, len(names) + 1))


def test_workers_sigint_flushes_every_worker_and_prints_one_summary(tmp_path):
    big = tmp_path / "big.pcap"
    subprocess.run([sys.executable, str(MKPCAP), "--packets", "200000", "--seed",
                    "3", "-o", str(big)], check=True)  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "fpc.cli", "-r", *[str(big)] * 10, "--data-dir",
         str(tmp_path / "d"), "-q", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip

    def writing() -> bool:  # a PCAP file holds more than its file header
        return any(p.stat().st_size > 24 for p in (tmp_path / "d").rglob("*.pcap"))

    wait_until(lambda: writing() or proc.poll() is not None, "packets written")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert err.count("packets read ") == 1
    s = summary(err)
    assert 0 < s["packets read"] < 2_000_000  # stopped part-way
    assert s["PCAP packets"] == s["packets read"]
    assert sum(pcap_packets(tmp_path / "d" / "pcap").values()) == s["packets read"]


def test_workers_option_checks_its_value(tmp_path):
    for value in ("0", "65", "many"):
        result = capture("-r", str(SAMPLES / "mixed-3000.pcap"), "--data-dir",
                         str(tmp_path), "--workers", value)  # fmt: skip
        assert result.returncode == 2
        assert f"--workers '{value}' is not a number from 1 to 64" in result.stderr
    cores = os.cpu_count() or 1
    assert parse_workers("auto", live=False) == max(1, min(cores, 2))
    assert parse_workers("auto", live=True) == max(1, min(cores, 4))
    assert parse_workers("3", live=True) == 3


def test_workers_default_to_auto_in_config_and_on_the_command_line(tmp_path):
    conf = tmp_path / "fpc.toml"
    conf.write_text('[capture]\nworkers = "auto"\n')
    assert load_config(str(conf)).capture.workers == AUTO_WORKERS
    assert load_config(None).capture.workers == AUTO_WORKERS
    args = build_parser().parse_intermixed_args(["-r", "x.pcap"])
    cores = os.cpu_count() or 1
    assert config_from_args(args).capture.workers == max(1, min(cores, 2))
    args = build_parser().parse_intermixed_args(["-i", "eth9", "--workers", "1"])
    assert config_from_args(args).capture.workers == 1


def test_router_sends_later_fragments_after_their_first_fragment():
    path = CORPUS / "other" / "zeek-ipv4-fragmented-ntp.pcap"
    with open_capture(str(path)) as capture_file:
        batch = next(iter(capture_file.batches()))
    dec = decode_batch(batch)
    assert (dec["frag"] & 2).any()  # the file has non-first fragments
    for n in (2, 3, 5):
        target = Router(n).targets(dec)
        frag = np.flatnonzero(dec["frag"] != 0)
        whole = np.flatnonzero((dec["frag"] == 0) & (dec["status"] == 0))
        assert (target[whole] == dec["hash"][whole] % n).all()
        first = {(bytes(dec["src"][j]), int(dec["ip_id"][j])): target[j]
                 for j in frag if not dec["frag"][j] & 2}  # fmt: skip
        for j in frag:
            assert target[j] == first[(bytes(dec["src"][j]), int(dec["ip_id"][j]))]


def test_merge_summaries_adds_each_counter():
    merged = merge_summaries(
        [{"packets": 2, "sessions": 1}, {"packets": 3, "sessions": 0}]
    )
    assert merged == {"packets": 5, "sessions": 1}


@pytest.mark.live
def test_workers_live_capture_every_packet_once(veth_pair, tmp_path):
    source = CORPUS / "other" / "zeek-smtp.pcap"
    with open(source, "rb") as f:
        sent = Counter(bytes(buf) for _ts, buf in dpkt.pcap.Reader(f))
    # both workers have joined the fanout group
    proc = start_live(tmp_path, "-i", veth_pair.host, "--data-dir", str(tmp_path),
                      "--print", "--workers", "2", captures=2)  # fmt: skip
    veth_pair.run_in_netns("tcpreplay", f"--intf1={veth_pair.peer}", "--pps=1000",
                           str(source))  # fmt: skip
    pcap_dir = tmp_path / "pcap"
    wait_until(lambda: count_pcap_packets(pcap_dir) == sent.total(), "packets written")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    err = (tmp_path / "stderr.log").read_text()
    assert proc.returncode == 0, err
    got = Counter(buf for _ts, buf in pcap_packets(tmp_path / "pcap").elements())
    assert got == sent
    records = [json.loads(line) for line in out.splitlines()]
    assert sum(r["network"]["packets"] for r in records) == sum(sent.values())
    drops = re.findall(r"\bdropped=(\d+)", err)  # each worker reports its drops
    assert len(drops) == 2 and set(drops) == {"0"}
    assert err.count("packets read ") == 1
    assert summary(err)["packets read"] == sum(sent.values())


def test_workers_live_interface_that_cannot_open_stops_every_worker(tmp_path):
    started = time.monotonic()
    result = capture("-i", "fpcnosuch0", "--data-dir", str(tmp_path),
                     "--workers", "2", timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("fpcnosuch0") >= 2  # each worker says why
    assert time.monotonic() - started < 30


def test_workers_read_a_pipe_in_one_process(tmp_path):
    # every worker reads the files itself; a pipe can only be read once
    source = SAMPLES / "mixed-3000.pcap"
    with open(source, "rb") as f:
        sent = sum(1 for _ in dpkt.pcap.Reader(f))
    result = subprocess.run(
        [sys.executable, "-m", "fpc.cli", "-r", "/dev/stdin", "--data-dir",
         str(tmp_path), "-q", "--workers", "2"],
        input=source.read_bytes(), capture_output=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "an input is not a regular file" in err
    s = summary(err)
    assert s["packets read"] == s["PCAP packets"] == sent
    assert sum(pcap_packets(tmp_path / "pcap").values()) == sent
