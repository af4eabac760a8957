"""Live capture on a veth pair: what tcpreplay sends is what LiveCapture returns.

Each test replays a capture file from inside a network namespace onto the peer
end of a veth pair and captures on the host end. Expected packets are read from
the same file with dpkt, never taken from fpc's own output.
"""

from __future__ import annotations

import io
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dpkt
import numpy as np
import pytest

from conftest import CORPUS, MKPCAP
from fpc.capture import LiveCapture
from fpc.errors import CaptureError, ConfigError
from fpc.packets import PRECISION_US, PacketBatch
from fpc.pcapfile import pcap_file_header
from fpc.writer import record_span
from netns import VethPair

SMTP_PCAP = CORPUS / "other" / "zeek-smtp.pcap"
LINKTYPE_ETHERNET = 1
DRAIN_TIMEOUT_S = 5.0  # time for the last packets to leave the kernel ring
TIMEOUT_MS = 100


def read_source(path: Path) -> list[bytes]:
    """Every packet's bytes in `path`, read with dpkt."""
    with path.open("rb") as f:
        return [bytes(buf) for _, buf in dpkt.pcap.Reader(f)]


def is_tcp_port_25(frame: bytes) -> bool:
    eth = dpkt.ethernet.Ethernet(frame)
    tcp = getattr(eth.data, "data", None)
    return isinstance(tcp, dpkt.tcp.TCP) and 25 in (tcp.sport, tcp.dport)


def replay(pair: VethPair, path: Path, *rate: str) -> int:
    """Send `path` out of the peer end with tcpreplay; the number of packets sent."""
    result = pair.run_in_netns("tcpreplay", f"--intf1={pair.peer}", *rate, str(path))
    failed = re.search(r"Failed packets:\s+(\d+)", result.stdout)
    assert failed is not None and failed.group(1) == "0", result.stdout
    sent = re.search(r"Successful packets:\s+(\d+)", result.stdout)
    assert sent is not None, result.stdout
    return int(sent.group(1))


def wait_for(condition: Callable[[], bool], timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Poll `condition` until it holds or `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


class Collector:
    """Iterates `capture.batches()` in a thread and keeps every batch."""

    def __init__(self, capture: LiveCapture) -> None:
        self.capture = capture
        self.stop = threading.Event()
        self.batches: list[PacketBatch] = []
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for batch in self.capture.batches(self.stop):
                self.batches.append(batch)
        except BaseException as exc:  # handed to the test thread in finish()
            self.error = exc

    def count(self) -> int:
        return sum(len(b) for b in self.batches)

    def finish(self, expected: int) -> list[bytes]:
        """Wait for `expected` packets (and a little more), stop, return all bytes.

        Raises what batches() raised, if it did.
        """
        wait_for(lambda: self.count() >= expected or self.error is not None)
        time.sleep(2 * TIMEOUT_MS / 1000)  # room for any packet beyond expected
        return self.close()

    def close(self) -> list[bytes]:
        """Set stop, wait for batches() to return, return all bytes or raise."""
        self.stop.set()
        self._thread.join(timeout=2)
        assert not self._thread.is_alive(), "batches() did not return after stop"
        if self.error is not None:
            raise self.error
        return [b.packet(i) for b in self.batches for i in range(len(b))]


def capture_replay(
    pair: VethPair,
    path: Path,
    *rate: str,
    expected: int | None = None,
    **options: Any,
) -> tuple[list[bytes], dict[str, int], list[PacketBatch], tuple[float, float]]:
    """Replay `path` while capturing on the host end.

    Waits for `expected` packets (default: as many as were sent). Returns the
    captured packets, the final stats, the batches, and the wall clock window
    (start, end) around the replay in seconds.
    """
    capture = LiveCapture(pair.host, timeout_ms=TIMEOUT_MS, **options)
    with capture:
        collector = Collector(capture)
        start = time.time()
        sent = replay(pair, path, *rate)
        end = time.time()
        packets = collector.finish(expected=sent if expected is None else expected)
        stats = capture.stats()
    return packets, stats, collector.batches, (start, end)


@pytest.mark.live
def test_capture_replayed_smtp_equals_source_packets(veth_pair: VethPair) -> None:
    source = read_source(SMTP_PCAP)

    packets, stats, batches, (start, end) = capture_replay(
        veth_pair, SMTP_PCAP, "--pps=2000"
    )

    assert len(packets) == len(source)
    assert packets == source
    assert stats["dropped"] == 0 and stats["interface_dropped"] == 0
    assert stats["received"] == stats["packets"] == len(source)
    assert stats["bytes"] == sum(len(p) for p in source)
    check_batch_arrays(batches, start, end)


def check_batch_arrays(batches: list[PacketBatch], start: float, end: float) -> None:
    """Arrays are consistent with the bytes, timestamps fall within the replay."""
    for batch in batches:
        assert len(batch) > 0
        assert batch.offset.dtype == np.int64 and batch.caplen.dtype == np.uint32
        assert int(batch.offset[-1] + batch.caplen[-1]) <= len(batch.data)
        assert np.array_equal(batch.wirelen, batch.caplen)
        assert set(batch.linktype.tolist()) == {LINKTYPE_ETHERNET}
        assert set(batch.precision.tolist()) == {PRECISION_US}
    ts_ns = np.concatenate([b.ts_ns for b in batches])
    assert np.all(np.diff(ts_ns) >= 0)
    assert start - 1 <= ts_ns[0] / 1e9 and ts_ns[-1] / 1e9 <= end + 1


# The kernel moves VLAN tags out of the frame, libpcap must put them back;
# frames far above 1514 bytes must pass whole.
ODD_FRAME_PCAPS = [
    "other/zeek-vlan-collisions.pcap",  # untagged, one tag, two tags
    "arkime/dot1ad.pcap",  # 802.1ad outer tag (0x88a8)
    "other/zeek-vlan-qinqinq.pcap",  # three tags
    "other/zeek-ftp-bigtransfer-seqwrap.pcap",  # offloaded TCP, 14546-byte frames
]


@pytest.mark.live
@pytest.mark.parametrize("name", ODD_FRAME_PCAPS)
def test_capture_odd_frames_come_back_byte_identical(
    veth_pair: VethPair, name: str
) -> None:
    source = read_source(CORPUS / name)

    packets, stats, _, _ = capture_replay(veth_pair, CORPUS / name, "--pps=5000")

    assert packets == source
    assert stats["dropped"] == 0


@pytest.fixture(scope="module")
def synthetic_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not MKPCAP.is_file():
        pytest.fail(f"traffic generator not found at {MKPCAP}; set FPC_CORPUS")
    path = tmp_path_factory.mktemp("capture") / "synthetic-20000.pcap"
    subprocess.run(
        [sys.executable, str(MKPCAP), "--packets", "20000", "--seed", "1"]
        + ["-o", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


@pytest.mark.live
def test_capture_20000_packets_at_20000_pps_no_drops(
    veth_pair: VethPair, synthetic_pcap: Path
) -> None:
    source = read_source(synthetic_pcap)

    packets, stats, _, _ = capture_replay(veth_pair, synthetic_pcap, "--pps=20000")

    assert len(packets) == len(source) == 20000
    assert packets == source
    assert stats["dropped"] == 0 and stats["interface_dropped"] == 0


@pytest.mark.live
def test_capture_bpf_tcp_port_25_keeps_only_smtp(veth_pair: VethPair) -> None:
    source = read_source(SMTP_PCAP)
    expected = [p for p in source if is_tcp_port_25(p)]
    assert 0 < len(expected) < len(source)

    packets, stats, _, _ = capture_replay(
        veth_pair, SMTP_PCAP, "--pps=5000", expected=len(expected), bpf="tcp port 25"
    )

    assert packets == expected
    assert stats["received"] == len(expected) and stats["dropped"] == 0


@pytest.mark.live
def test_capture_snaplen_truncates_packets(veth_pair: VethPair) -> None:
    source = read_source(SMTP_PCAP)

    packets, stats, batches, _ = capture_replay(
        veth_pair, SMTP_PCAP, "--pps=5000", snaplen=96
    )

    assert packets == [p[:96] for p in source]
    wirelen = np.concatenate([b.wirelen for b in batches])
    assert wirelen.tolist() == [len(p) for p in source]
    assert max(len(p) for p in source) > 96  # some packets were really cut
    assert stats["wire_bytes"] == sum(len(p) for p in source)
    assert stats["bytes"] == sum(len(p) for p in packets)
    assert stats["ring_dropped"] == 0


@pytest.mark.live
def test_capture_batches_hold_pcap_records_for_the_writer(veth_pair: VethPair) -> None:
    packets, _, batches, _ = capture_replay(veth_pair, SMTP_PCAP, "--pps=5000")

    records = []
    for batch in batches:
        assert batch.framed
        span = record_span(batch, 0, len(batch))
        assert span is not None
        records.append(bytes(span))
    pcap = pcap_file_header(LINKTYPE_ETHERNET, PRECISION_US) + b"".join(records)
    parsed = [bytes(buf) for _, buf in dpkt.pcap.Reader(io.BytesIO(pcap))]
    assert parsed == packets == read_source(SMTP_PCAP)


@pytest.mark.live
def test_capture_fanout_two_handles_split_without_duplicates(
    veth_pair: VethPair, synthetic_pcap: Path
) -> None:
    source = read_source(synthetic_pcap)
    group_id = random.randrange(1, 0xFFFF)  # tests running at once must not share
    options: dict[str, Any] = {"timeout_ms": TIMEOUT_MS, "fanout": (group_id, 0)}
    with (
        LiveCapture(veth_pair.host, **options) as first,
        LiveCapture(veth_pair.host, **options) as second,
    ):
        collectors = [Collector(first), Collector(second)]
        sent = replay(veth_pair, synthetic_pcap, "--pps=20000")
        wait_for(lambda: sum(c.count() for c in collectors) >= sent)
        parts = [c.finish(expected=0) for c in collectors]

    assert all(len(part) > 0 for part in parts)
    assert sorted(parts[0] + parts[1]) == sorted(source)


@pytest.mark.live
def test_capture_slow_reader_counts_every_drop(
    veth_pair: VethPair, synthetic_pcap: Path
) -> None:
    source = read_source(synthetic_pcap)
    with LiveCapture(veth_pair.host, buffer_mb=1, timeout_ms=TIMEOUT_MS) as capture:
        sent = replay(veth_pair, synthetic_pcap, "--topspeed")  # nobody reads yet
        collector = Collector(capture)
        packets = collector.finish(expected=sent - capture.stats()["dropped"])
        stats = capture.stats()

    assert stats["dropped"] > 0
    assert stats["received"] == sent == len(source)
    assert stats["packets"] + stats["dropped"] == sent
    assert is_subsequence(packets, source)


def is_subsequence(part: list[bytes], whole: list[bytes]) -> bool:
    remaining = iter(whole)
    return all(any(p == w for w in remaining) for p in part)


@pytest.mark.live
def test_capture_stop_on_idle_interface_returns_within_a_second(
    veth_pair: VethPair,
) -> None:
    with LiveCapture(veth_pair.host, timeout_ms=TIMEOUT_MS) as capture:
        collector = Collector(capture)
        time.sleep(0.3)  # the reader is now waiting on an interface with no traffic
        start = time.monotonic()
        packets = collector.close()
        elapsed = time.monotonic() - start

    assert packets == []
    assert elapsed < 1.0


@pytest.mark.live
def test_capture_stop_during_traffic_returns_within_a_second(
    veth_pair: VethPair, synthetic_pcap: Path
) -> None:
    sender = subprocess.Popen(
        veth_pair.netns_command(
            "tcpreplay", f"--intf1={veth_pair.peer}", "--topspeed", "--loop=50"
        )
        + [str(synthetic_pcap)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with LiveCapture(veth_pair.host, timeout_ms=TIMEOUT_MS) as capture:
            collector = Collector(capture)
            wait_for(lambda: collector.count() > 1000)
            start = time.monotonic()
            packets = collector.close()
            elapsed = time.monotonic() - start
            still_sending = sender.poll() is None
    finally:
        sender.kill()
        sender.wait(timeout=10)

    assert still_sending, "tcpreplay ended before stop; the test proved nothing"
    assert len(packets) > 1000
    assert elapsed < 1.0


# Run by the SIGINT test in a child process: capture in the main thread and
# wait for packets on an interface that has none. The first empty batch (one
# timeout without packets) shows the loop runs; it goes on waiting after it.
# Python leaves SIGINT ignored when it starts with it ignored, as it does in
# a background job of a shell (pytest run with `&`): KeyboardInterrupt is
# switched on explicitly.
SIGINT_CHILD = """
import signal, sys, threading
signal.signal(signal.SIGINT, signal.default_int_handler)
from fpc.capture import LiveCapture
with LiveCapture(sys.argv[1]) as capture:
    try:
        for n, batch in enumerate(capture.batches(threading.Event(), idle=True)):
            if n == 0:
                print("waiting", flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
"""


@pytest.mark.live
def test_capture_idle_loop_ends_on_sigint(veth_pair: VethPair) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SIGINT_CHILD, veth_pair.host],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[1],
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "waiting\n"
            child.send_signal(signal.SIGINT)
            # within one timeout_ms; the margin is for a loaded machine
            out, err = child.communicate(timeout=20)
        finally:
            child.kill()

    assert out == "interrupted\n", err
    assert child.returncode == 0, err


@pytest.mark.live
def test_capture_interface_removed_raises_capture_error(veth_pair: VethPair) -> None:
    with LiveCapture(veth_pair.host, timeout_ms=TIMEOUT_MS) as capture:
        collector = Collector(capture)
        time.sleep(0.2)
        subprocess.run(["ip", "link", "del", veth_pair.host], check=True, timeout=10)
        with pytest.raises(CaptureError, match=rf"interface '{veth_pair.host}'.*up"):
            collector.finish(expected=1)


@pytest.mark.live
def test_capture_missing_interface_raises_capture_error(
    netns_required: None,
) -> None:
    capture = LiveCapture("fpcvmissing9")
    message = (
        r"cannot open interface 'fpcvmissing9' \(No such device\); "
        r"check 'ip link' and pass an existing interface with --iface"
    )
    with pytest.raises(CaptureError, match=message):
        capture.open()


# Opens an interface in a child process that runs without CAP_NET_RAW.
NO_CAPABILITY_CHILD = """
from fpc.capture import LiveCapture
from fpc.errors import CaptureError
try:
    LiveCapture("lo").open()
except CaptureError as exc:
    print(exc)
"""


@pytest.mark.live
def test_capture_without_cap_net_raw_raises_capture_error(
    netns_required: None,
) -> None:
    drop = ["--bounding-set=-net_raw,-net_admin", "--inh-caps=-net_raw,-net_admin"]
    result = subprocess.run(
        ["setpriv", *drop, sys.executable, "-c", NO_CAPABILITY_CHILD],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=Path(__file__).parents[1],
    )

    assert result.stdout == (
        "cannot open interface 'lo' (Permission denied); "
        "run as root or grant CAP_NET_RAW and CAP_NET_ADMIN to the program\n"
    ), result.stderr


@pytest.mark.live
def test_capture_interface_down_raises_capture_error(veth_pair: VethPair) -> None:
    subprocess.run(["ip", "link", "set", veth_pair.host, "down"], check=True)
    with pytest.raises(CaptureError, match=r"\(interface is down\); bring it up"):
        LiveCapture(veth_pair.host).open()


@pytest.mark.live
def test_capture_bad_filter_raises_capture_error(veth_pair: VethPair) -> None:
    capture = LiveCapture(veth_pair.host, bpf="tcp prot 25")
    message = (
        rf"invalid BPF filter 'tcp prot 25' on interface '{veth_pair.host}' "
        r"\(.*syntax error\); fix the expression"
    )
    with pytest.raises(CaptureError, match=message):
        capture.open()


@pytest.mark.parametrize(
    ("option", "value"),
    [("snaplen", 0), ("buffer_mb", 0), ("timeout_ms", 0), ("fanout", (1, 99))],
)
def test_capture_setting_out_of_range_raises_config_error(
    option: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=f"capture setting {option}"):
        LiveCapture("lo", **{option: value})


def test_capture_batches_before_open_raises_capture_error() -> None:
    capture = LiveCapture("lo")
    with pytest.raises(CaptureError, match="not open; call open"):
        next(capture.batches(threading.Event()))
    with pytest.raises(CaptureError, match="not open; call open"):
        _ = capture.linktype
