"""fpc-pcapd serves exactly the packets of a session, checked against the source.

Arkime's expected output for each capture of its test suite lists the byte
offset of every packet of every session inside the source capture
(`packetPos`): an independent statement of which packets form a session. The
packets fpc-pcapd serves for the matching fpc session must be those, byte for
byte, in order.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime

import dpkt
import pytest

from conftest import CORPUS, run_pipeline

# Captures of several kinds: Ethernet, VLAN, IPv6, BSD loopback, tunnels, TLS.
FILES = [
    "http-301-get", "dns-udp", "openssl-tls1_2", "v6-http", "http-empty-useragent",
    "no-syn-ack", "gre-sample", "smtp-starttls", "bigendian", "imap", "mysql-tls",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pcapd(tmp_path_factory):
    """Ingest the files, then run fpc-pcapd on the data directory."""
    data = tmp_path_factory.mktemp("pcapd")
    paths = [CORPUS / "arkime" / f"{name}.pcap" for name in FILES]
    _summary, records, store = run_pipeline([p for p in paths if p.exists()], data)
    store.close()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fpc.server", "--data-dir", str(data),
         "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/api/sessions?limit=1", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield base, records
    proc.terminate()
    proc.wait(timeout=10)


def arkime_sessions(name: str) -> list[dict]:
    with open(CORPUS / "arkime" / f"{name}.test") as f:
        return [s["body"] for s in json.load(f)["sessions3"]]


def source_packets(name: str, positions: list[int]) -> list[bytes]:
    """Packet bytes at the record offsets `positions` of the source capture."""
    data = (CORPUS / "arkime" / f"{name}.pcap").read_bytes()
    endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = []
    for pos in positions:
        caplen = struct.unpack_from(endian + "I", data, pos + 8)[0]
        out.append(data[pos + 16 : pos + 16 + caplen])
    return out


def served_packets(url: str) -> list[bytes]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read()
    import io

    return [buf for _ts, buf in dpkt.pcap.Reader(io.BytesIO(body))]


def ms(iso: str) -> int:
    base, frac = iso.rstrip("Z").split(".")
    dt = datetime.strptime(base + "+0000", "%Y-%m-%dT%H:%M:%S%z")
    return int(dt.timestamp()) * 1000 + int(frac[:3])


def find_ours(records: list[dict], theirs: dict) -> dict | None:
    ends = {
        (theirs["source"]["ip"], theirs["source"].get("port", 0)),
        (theirs["destination"]["ip"], theirs["destination"].get("port", 0)),
    }
    for r in records:
        mine = {
            (r["source"]["ip"], r["source"]["port"]),
            (r["destination"]["ip"], r["destination"]["port"]),
        }
        if mine == ends and ms(r["event"]["start"]) == theirs["firstPacket"]:
            return r
    return None


def test_pcapd_serves_the_source_packets_of_each_session(pcapd):
    base, records = pcapd
    checked = 0
    for name in FILES:
        for theirs in arkime_sessions(name):
            positions = [p for p in theirs.get("packetPos", []) if p >= 0]
            ours = find_ours(records, theirs)
            if ours is None or len(positions) != theirs["network"]["packets"]:
                continue
            got = served_packets(f"{base}/api/session/{ours['event']['id']}.pcap")
            assert got == source_packets(name, positions), (name, ours["event"]["id"])
            checked += 1
    assert checked >= 15


def test_pcapd_unknown_session_is_404_with_hint(pcapd):
    base, _records = pcapd
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/api/session/test-1-2.pcap", timeout=5)
    assert err.value.code == 404
    body = json.loads(err.value.read())
    assert body["error"] and body["hint"]


def test_pcapd_query_merges_sessions_in_time_order(pcapd):
    base, records = pcapd
    dns = [r for r in records if "dns" in r["fpc"]["protocols"]]
    got = served_packets(f"{base}/api/sessions.pcap?protocol=dns&limit=1000")
    assert len(got) == sum(r["network"]["packets"] for r in dns)


def test_pcapd_session_id_serves_every_segment_of_a_long_session(tmp_path):
    source = CORPUS / "other" / "suricata-http-mime-truncated-file.pcap"
    _summary, records, store = run_pipeline(
        [source], tmp_path, **{"sessions.segment_packets": 500}
    )
    store.close()
    long = [r for r in records if r["fpc"]["segment"] > 0]
    assert long, "the capture should give a session of several segments"
    sid = long[0]["fpc"]["session"]
    segments = [r for r in records if r["fpc"]["session"] == sid]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fpc.server", "--data-dir", str(tmp_path),
         "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/sessions?limit=1", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        whole = served_packets(f"{base}/api/session/{sid}.pcap")
        assert len(whole) == sum(r["network"]["packets"] for r in segments)
        one = served_packets(f"{base}/api/session/{long[0]['event']['id']}.pcap")
        assert len(one) == long[0]["network"]["packets"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
