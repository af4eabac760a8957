"""Input captures for the benchmarks: cached mkpcap files and idle-session pcaps.

`mkpcap_capture` runs the shared traffic generator once per (packets, seed)
and keeps the file in the cache directory. `write_idle_sessions` writes N UDP
packets that each open a session of their own (or, as a baseline, that share
a few sessions), all within one second, so none times out while measured.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

MKPCAP = os.environ.get(
    "FPC_MKPCAP",
    str(Path(__file__).resolve().parents[2] / "shared" / "tools" / "mkpcap.py"),
)
DEFAULT_CACHE_DIR = os.environ.get("FPC_BENCH_CACHE", "/var/tmp/fpc-bench")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
START_S = 1_700_000_000
SPACING_US = 1  # all packets of a 1M-session file fall within one second
UDP_PAYLOAD = b"fpc-bench"
DST_PORT = 40000  # no application parser claims it: the bare session cost
ETHERNET_HEADER = bytes.fromhex("0200000000020200000000010800")


def mkpcap_capture(
    packets: int, seed: int = 1, cache_dir: str = DEFAULT_CACHE_DIR
) -> str:
    """Path of the mkpcap capture with these parameters, generated if missing."""
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"mkpcap-p{packets}-s{seed}.pcap")
    if os.path.exists(path):
        return path
    logger.info("generating capture packets=%d seed=%d path=%s", packets, seed, path)
    tmp = path + ".tmp"
    argv = [sys.executable, MKPCAP, "--packets", str(packets), "--seed", str(seed)]
    subprocess.run([*argv, "-o", tmp], check=True, stdout=subprocess.DEVNULL)
    os.replace(tmp, path)
    return path


def warm_page_cache(path: str) -> int:
    """Read `path` once so later runs find it in the page cache; returns bytes."""
    total = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            total += len(chunk)
    return total


def idle_sessions_capture(
    packets: int, distinct: bool, cache_dir: str = DEFAULT_CACHE_DIR
) -> str:
    """Path of a cached `write_idle_sessions` file, written if missing."""
    os.makedirs(cache_dir, exist_ok=True)
    kind = "distinct" if distinct else "few"
    path = os.path.join(cache_dir, f"idle-{kind}-p{packets}.pcap")
    if not os.path.exists(path):
        logger.info("generating idle sessions packets=%d kind=%s", packets, kind)
        write_idle_sessions(path + ".tmp", packets, distinct)
        os.replace(path + ".tmp", path)
    return path


def write_idle_sessions(path: str, packets: int, distinct: bool) -> None:
    """Write `packets` UDP packets: one session each, or 16 sessions in all."""
    # TODO: only UDP sessions with a 9-byte payload no parser claims are
    # generated (each is parked, see fpc/parked.py); TCP SYN-only sessions (a
    # scan) and sessions a parser claims are not measured yet.
    with open(path, "wb") as f:
        f.write(PCAP_HEADER)
        for i in range(packets):
            f.write(_udp_record(i if distinct else i % 16, i))


def _udp_record(n: int, ts_index: int) -> bytes:
    """Client 10.(n>>16).(n>>8).n, port 1024 + n % 50000, to 192.0.2.1:DST_PORT."""
    src = bytes((10, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))
    udp = struct.pack("!HHHH", 1024 + n % 50000, DST_PORT, 8 + len(UDP_PAYLOAD), 0)
    ip = _ipv4_header(src, bytes((192, 0, 2, 1)), len(udp) + len(UDP_PAYLOAD))
    frame = ETHERNET_HEADER + ip + udp + UDP_PAYLOAD
    sec, usec = divmod(ts_index * SPACING_US, 1_000_000)
    return struct.pack("<IIII", START_S + sec, usec, len(frame), len(frame)) + frame


def _ipv4_header(src: bytes, dst: bytes, payload_len: int) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0, 64, 17, 0,
                       src, dst)  # fmt: skip
    csum = _checksum(head)
    return head[:10] + struct.pack("!H", csum) + head[12:]


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
