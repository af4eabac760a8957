"""fpc-pcapd against PCAP files written from real corpus captures.

Sessions are grouped here with dpkt, independently of fpc.session; every PCAP
the service returns is compared with the source capture packet by packet.
"""

from __future__ import annotations

import argparse
import asyncio
import calendar
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import dpkt
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_writer import assert_tcpdump_reads, load_source, read_pcapng, read_records

from fpc.packets import PRECISION_NS, PRECISION_US, PacketBatch
from fpc.server import (
    BadQuery,
    Service,
    packet_list,
    parse_listen,
    parse_time,
    start_site,
)
from fpc.store import open_store
from fpc.store.base import Store
from fpc.writer import PcapWriter

NODE = "node1"
CAPTURES = [
    ("other/zeek-smtp.pcap", 1, PRECISION_US),
    ("other/tcpdump-tcp-handshake-nano.pcap", 113, PRECISION_NS),
    ("other/zeek-sll-irc-starttls.pcap", 113, PRECISION_US),
]


def iso_ns(ts_ns: int) -> str:
    sec, frac = divmod(ts_ns, 10**9)
    return datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{frac:09d}Z"
    )


def l4_key(linktype: int, data: bytes) -> tuple | None:
    """(proto, endpoints) of a TCP/UDP packet, endpoints sorted; None otherwise."""
    frame = dpkt.ethernet.Ethernet(data) if linktype == 1 else dpkt.sll.SLL(data)
    ip = frame.data
    if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
        return None
    l4 = ip.data
    if not isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
        return None
    a = (socket.inet_ntop(_family(ip), ip.src), l4.sport)
    b = (socket.inet_ntop(_family(ip), ip.dst), l4.dport)
    proto = "tcp" if isinstance(l4, dpkt.tcp.TCP) else "udp"
    return proto, tuple(sorted([a, b]))


def _family(ip) -> int:
    return socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6


def build_records(name, linktype, records, file_num, pos, start_index):
    """SPI records grouped by 5-tuple; also the source packets of each."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, (_, _, data) in enumerate(records):
        key = l4_key(linktype, data)
        if key is not None:
            groups[key].append(i)
    out = []
    for n, ((proto, (a, b)), idx) in enumerate(groups.items(), start_index):
        sid = f"{NODE}-{records[idx[0]][0]:x}-{n:08x}"
        rec = {
            "@timestamp": iso_ns(records[idx[0]][0]),
            "event": {
                "id": sid,
                "start": iso_ns(min(records[i][0] for i in idx)),
                "end": iso_ns(max(records[i][0] for i in idx)),
            },
            "observer": {"name": NODE},
            "source": {"ip": a[0], "port": a[1]},
            "destination": {"ip": b[0], "port": b[1]},
            "fpc": {
                "session": sid,
                "protocols": [proto],
                "packet": {
                    "file": [int(file_num[i]) for i in idx],
                    "pos": [int(pos[i]) for i in idx],
                    "len": [len(records[i][2]) for i in idx],
                },
            },
        }
        out.append((rec, [records[i] for i in idx], linktype, name))
    return out


class Corpus:
    """PCAP files and SPI records in a data dir, and what each session holds."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.pcap_dir = data_dir / "pcap"
        self.store = open_store(str(data_dir), None)
        self.sessions: dict[str, tuple[dict, list, int, str]] = {}
        w = PcapWriter(str(self.pcap_dir), NODE, self.store, 8192, 1e12)
        for name, linktype, precision in CAPTURES:
            _, _, records = load_source(name)
            batch = PacketBatch.from_list(records, linktype, precision)
            file_num, pos = w.write(batch)
            built = build_records(
                name, linktype, records, file_num, pos, len(self.sessions)
            )
            for rec, pkts, lt, src in built:
                self.sessions[rec["event"]["id"]] = (rec, pkts, lt, src)
            self.store.save_sessions([b[0] for b in built])
        w.close()

    def ids_of(self, name: str) -> list[str]:
        return [sid for sid, s in self.sessions.items() if s[3] == name]


class ServerThread:
    """fpc-pcapd's service on a uvloop loop in a thread, on a free port."""

    def __init__(self, store: Store, pcap_dir: Path) -> None:
        self.service = Service(store, str(pcap_dir))
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        start = start_site(self.service, "127.0.0.1", 0)
        self.runner = asyncio.run_coroutine_threadsafe(start, self.loop).result(30)
        self.port = self.runner.addresses[0][1]

    def get(self, path: str) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[int, object]:
        status, headers, body = self.get(path)
        assert headers["Content-Type"].startswith("application/json")
        return status, json.loads(body)

    def stop(self) -> None:
        stop = self.runner.cleanup()
        asyncio.run_coroutine_threadsafe(stop, self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()
        self.service.shutdown()


@pytest.fixture
def corpus(tmp_path):
    c = Corpus(tmp_path / "data")
    yield c
    c.store.close()


@pytest.fixture
def server(corpus):
    s = ServerThread(corpus.store, corpus.pcap_dir)
    yield s
    s.stop()


def assert_error(server: ServerThread, path: str, status: int, match: str) -> None:
    got_status, body = server.get_json(path)
    assert got_status == status, body
    assert set(body) == {"error", "hint"}
    assert match in body["error"], body


def test_session_pcap_is_byte_identical_to_source(server, corpus, tmp_path):
    assert len(corpus.sessions) > 5
    for sid, (_, packets, linktype, _) in corpus.sessions.items():
        status, headers, body = server.get(f"/api/session/{sid}.pcap")
        assert status == 200
        assert headers["Content-Type"] == "application/vnd.tcpdump.pcap"
        out = tmp_path / f"{sid}.pcap"
        out.write_bytes(body)
        got_link, _, got = read_records(out)
        assert got_link == linktype
        assert got == packets
    assert_tcpdump_reads(str(out))


def test_session_pcap_spans_rotated_files(server, corpus):
    # 8 KiB files: the longest SMTP session lies in several PCAP files.
    rec, packets, _, _ = max(corpus.sessions.values(), key=lambda s: len(s[1]))
    assert len(set(rec["fpc"]["packet"]["file"])) > 1
    status, _, body = server.get(f"/api/session/{rec['event']['id']}.pcap")
    assert status == 200
    path = corpus.data_dir / "long.pcap"
    path.write_bytes(body)
    assert read_records(path)[2] == packets
    assert_tcpdump_reads(str(path))


def test_session_json_is_stored_record(server, corpus):
    sid, (rec, _, _, _) = next(iter(corpus.sessions.items()))
    status, body = server.get_json(f"/api/session/{sid}")
    assert status == 200
    assert body == rec


def _ids(body) -> set[str]:
    return {r["event"]["id"] for r in body}


def test_sessions_search_filters(server, corpus):
    recs = [s[0] for s in corpus.sessions.values()]
    rec = recs[0]
    ip, port = rec["source"]["ip"], rec["destination"]["port"]

    status, body = server.get_json(f"/api/sessions?ip={ip}&limit=10000")
    want = {
        r["event"]["id"]
        for r in recs
        if ip in (r["source"]["ip"], r["destination"]["ip"])
    }
    assert status == 200 and _ids(body) == want

    status, body = server.get_json(f"/api/sessions?port={port}&protocol=TCP")
    want = {
        r["event"]["id"]
        for r in recs
        if port in (r["source"]["port"], r["destination"]["port"])
        and r["fpc"]["protocols"] == ["tcp"]
    }
    assert _ids(body) == want

    status, body = server.get_json("/api/sessions?limit=2")
    assert len(body) == 2


def test_sessions_search_time_window_iso_and_epoch(server, corpus):
    # zeek-smtp spans 2009 and 2015; the 2015 sessions alone end after 2015-01-01.
    recs = [s[0] for s in corpus.sessions.values()]
    cut = datetime(2015, 1, 1, tzinfo=UTC)
    want = {r["event"]["id"] for r in recs if r["event"]["end"] >= "2015-01-01"}
    assert 0 < len(want) < len(recs)
    for start in ("2015-01-01T00:00:00Z", "2015-01-01", str(int(cut.timestamp()))):
        status, body = server.get_json(f"/api/sessions?start={start}&limit=10000")
        assert status == 200 and _ids(body) == want, start
    status, body = server.get_json(f"/api/sessions?end={int(cut.timestamp())}.5")
    assert _ids(body) == {r["event"]["id"] for r in recs} - want


def test_sessions_pcap_merges_in_time_order(server, corpus):
    query = "node=node1&end=2014-01-01"  # the 2009 part of zeek-smtp only
    _, found = server.get_json(f"/api/sessions?{query}")
    ids = _ids(found)
    assert len(ids) > 1 and set(ids) <= set(corpus.ids_of(CAPTURES[0][0]))
    want = []
    for sid in ids:
        want += corpus.sessions[sid][1]
    _, _, source = load_source(CAPTURES[0][0])
    order = {pkt: i for i, pkt in enumerate(source)}
    want.sort(key=lambda p: (p[0], order[p]))

    status, headers, body = server.get(f"/api/sessions.pcap?{query}")
    assert status == 200
    assert headers["Content-Disposition"] == 'attachment; filename="sessions.pcap"'
    path = corpus.data_dir / "merged.pcap"
    path.write_bytes(body)
    assert read_records(path)[2] == want
    assert_tcpdump_reads(str(path))


def test_sessions_pcap_mixed_kinds_is_pcapng(server, corpus):
    status, headers, body = server.get("/api/sessions.pcap?limit=10000")
    assert status == 200
    assert headers["Content-Type"] == "application/x-pcapng"
    path = corpus.data_dir / "all.pcapng"
    path.write_bytes(body)
    got = read_pcapng(path)
    want = []
    for _, packets, linktype, name in corpus.sessions.values():
        precision = {c[0]: c[2] for c in CAPTURES}[name]
        want += [(linktype, precision, *p) for p in packets]
    assert sorted(got, key=lambda p: p[2]) == got  # time order
    assert sorted(got) == sorted(want)  # each packet once


@pytest.mark.parametrize(
    ("path", "status", "match"),
    [
        ("/api/session/node1-0-00000000", 404, "no session with id"),
        ("/api/session/node1-0-00000000.pcap", 404, "no session with id"),
        ("/api/nothing", 404, "Not Found"),
        ("/api/sessions?ip=999.1.1.1", 400, "parameter 'ip'"),
        ("/api/sessions?port=70000", 400, "parameter 'port'"),
        ("/api/sessions?limit=0", 400, "parameter 'limit'"),
        ("/api/sessions?limit=10001", 400, "parameter 'limit'"),
        ("/api/sessions?limit=-5", 400, "parameter 'limit'"),
        # str.isdigit() takes these, then int() fails or reads them as digits
        ("/api/sessions?limit=%C2%B2", 400, "parameter 'limit'"),
        ("/api/sessions?limit=%EF%BC%91", 400, "parameter 'limit'"),
        ("/api/sessions.pcap?limit=%D9%A1", 400, "parameter 'limit'"),
        ("/api/sessions?limit=" + "1" * 5000, 400, "parameter 'limit'"),
        ("/api/sessions?port=%C2%B2", 400, "parameter 'port'"),
        ("/api/sessions?port=%D9%A1", 400, "parameter 'port'"),
        ("/api/sessions?start=%D9%A1%D9%A1", 400, "parameter 'start'"),
        ("/api/sessions?hostname=x", 400, "parameter 'hostname' is unknown"),
        ("/api/sessions?start=yesterday", 400, "parameter 'start'"),
        ("/api/sessions?start=2020-01-02&end=2020-01-01", 400, "is after 'end'"),
        ("/api/sessions?port=1&port=2", 400, "more than once"),
        ("/api/sessions?node=../x", 400, "parameter 'node'"),
        ("/api/sessions.pcap?protocol=a%20b", 400, "parameter 'protocol'"),
        ("/api/session/a%20b", 400, "not a session id"),
    ],
)
def test_bad_requests_get_json_errors(server, path, status, match):
    assert_error(server, path, status, match)


@pytest.mark.parametrize(
    "path",
    [
        "/api/session/../../../../etc/passwd",
        "/api/session/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/api/session/%2e%2e%2f%2e%2e%2fetc%2fpasswd.pcap",
        "/api/session/%2fetc%2fpasswd",
        "/api/session//etc/passwd",
        "/api/session/..",
        "/api/session/%00",
        "/../../etc/passwd",
    ],
)
def test_path_traversal_is_refused(server, path):
    status, _, body = server.get(path)
    assert status in (400, 404)
    assert b"root:" not in body


def _first_session(corpus: Corpus) -> tuple[str, dict]:
    sid, (rec, _, _, _) = next(iter(corpus.sessions.items()))
    return sid, rec


def _registry_row(corpus: Corpus, rec: dict):
    return corpus.store.get_file(NODE, rec["fpc"]["packet"]["file"][0])


def test_deleted_pcap_file_gives_410(server, corpus):
    sid, rec = _first_session(corpus)
    os.unlink(_registry_row(corpus, rec).path)
    assert_error(server, f"/api/session/{sid}.pcap", 410, "cannot open PCAP file")


def test_truncated_pcap_file_gives_410(server, corpus):
    sid, rec = _first_session(corpus)
    row = _registry_row(corpus, rec)
    os.truncate(row.path, rec["fpc"]["packet"]["pos"][0] + 10)
    assert_error(server, f"/api/session/{sid}.pcap", 410, "damaged record")


def test_registry_path_outside_pcap_dir_is_refused(server, corpus, tmp_path):
    sid, rec = _first_session(corpus)
    row = _registry_row(corpus, rec)
    outside = tmp_path / "outside.pcap"
    outside.write_bytes(Path(row.path).read_bytes())
    for path in (str(outside), str(corpus.pcap_dir / ".." / "outside.pcap")):
        row.path = path
        corpus.store.save_file(row)
        assert_error(server, f"/api/session/{sid}.pcap", 410, "outside the PCAP")


def test_symlink_out_of_pcap_dir_is_refused(server, corpus, tmp_path):
    sid, rec = _first_session(corpus)
    row = _registry_row(corpus, rec)
    outside = tmp_path / "outside.pcap"
    os.rename(row.path, outside)
    os.symlink(outside, row.path)
    assert_error(server, f"/api/session/{sid}.pcap", 410, "outside the PCAP")


def test_store_failure_gives_503(server, corpus):
    corpus.store.close()
    assert_error(server, "/api/sessions", 503, "session store failed")
    assert_error(server, "/api/session/node1-1-2", 503, "session store failed")


def test_each_request_logs_one_info_line(server, corpus, caplog):
    caplog.set_level("INFO", logger="fpc.server")
    sid, _ = _first_session(corpus)
    server.get(f"/api/session/{sid}.pcap")
    server.get("/api/sessions?limit=0")
    lines = [r.getMessage() for r in caplog.records if r.name == "fpc.server"]
    requests = [line for line in lines if line.startswith("request ")]
    assert len(requests) == 2
    assert f"path=/api/session/{sid}.pcap status=200" in requests[0]
    assert "status=400" in requests[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fpc_pcapd_command_serves_and_stops_on_sigterm(corpus):
    corpus.store.close()
    port = _free_port()
    cmd = [sys.executable, "-m", "fpc.server", "--data-dir", str(corpus.data_dir)]
    proc = subprocess.Popen(
        [*cmd, "--listen", f"127.0.0.1:{port}"], stderr=subprocess.PIPE, text=True
    )
    try:
        body = _fetch_when_up(port, "/api/sessions?limit=10000")
        assert {r["event"]["id"] for r in json.loads(body)} == set(corpus.sessions)
        sid, (_, packets, _, _) = next(iter(corpus.sessions.items()))
        path = corpus.data_dir / "cli.pcap"
        path.write_bytes(_fetch_when_up(port, f"/api/session/{sid}.pcap"))
        assert read_records(path)[2] == packets
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "server listening" in err


def _fetch_when_up(port: int, path: str) -> bytes:
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            resp = conn.getresponse()
            assert resp.status == 200
            return resp.read()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            conn.close()


def test_packet_list_unique_keeps_first_of_each_packet(corpus):
    recs = [s[0] for s in corpus.sessions.values()][:3]
    once = packet_list(recs)
    twice = packet_list([recs[1], *recs, recs[0]]).unique()
    got = {(twice.keys[k], p) for k, p in zip(twice.file_idx, twice.pos, strict=True)}
    want = {(once.keys[k], p) for k, p in zip(once.file_idx, once.pos, strict=True)}
    assert len(twice) == len(once) and got == want
    n1 = len(recs[1]["fpc"]["packet"]["pos"])
    assert twice.pos[:n1].tolist() == recs[1]["fpc"]["packet"]["pos"]


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("2015-01-01T00:00:00.123456789Z", (2015, 1, 1, 0, 0, 0, 123456789)),
        ("2015-01-01T01:00:00.5+01:00", (2015, 1, 1, 0, 0, 0, 500000000)),
        ("2015-01-01", (2015, 1, 1, 0, 0, 0, 0)),
        ("2038-01-19T03:14:08", (2038, 1, 19, 3, 14, 8, 0)),
        ("1420070400.000000001", (2015, 1, 1, 0, 0, 0, 1)),
        # past nanoseconds the fraction is cut off, not dropped whole
        ("2015-01-01T00:00:00.999999999999Z", (2015, 1, 1, 0, 0, 0, 999999999)),
        ("2015-01-01T00:00:00,1234567891+00:00", (2015, 1, 1, 0, 0, 0, 123456789)),
        ("1420070400.9999999999", (2015, 1, 1, 0, 0, 0, 999999999)),
        ("1420070400." + "5" * 3000, (2015, 1, 1, 0, 0, 0, 555555555)),
        # forms datetime takes whose fraction was lost below the second
        ("2015-01-01 00:00:00.5Z", (2015, 1, 1, 0, 0, 0, 500000000)),
        ("20150101T000000.123456789Z", (2015, 1, 1, 0, 0, 0, 123456789)),
    ],
)
def test_parse_time_gives_utc_nanoseconds(value, want):
    *fields, ns = want
    assert parse_time("start", value) == calendar.timegm(fields) * 10**9 + ns


@pytest.mark.parametrize(
    "value",
    [
        "1969-12-31",
        "2015-13-01",
        "1e9",
        "-5",
        "now",
        "2015-01-01T25:00",
        "\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660",
        "1700000000.\uff15",
        "2015-01-01T00:00:00.\u0665Z",
    ],
)
def test_parse_time_rejects_bad_times(value):
    with pytest.raises(
        BadQuery, match=r"parameter 'start' = .* (is not a time|out of range)"
    ):
        parse_time("start", value)


@pytest.mark.parametrize("value", ["127.0.0.1:\u00b2", "[::1]:\u0668\u0660", "h:"])
def test_listen_port_must_be_ascii_digits(value):
    with pytest.raises(argparse.ArgumentTypeError, match="is not HOST:PORT"):
        parse_listen(value)


def _record_for(sid: str, node: str, file_num, pos, packets) -> dict:
    return {
        "event": {
            "id": sid,
            "start": iso_ns(packets[0][0]),
            "end": iso_ns(packets[-1][0]),
        },
        "observer": {"name": node},
        "source": {"ip": "192.0.2.1", "port": 1},
        "destination": {"ip": "192.0.2.2", "port": 2},
        "fpc": {
            "session": sid,
            "protocols": ["tcp"],
            "packet": {"file": file_num.tolist(), "pos": pos.tolist()},
        },
    }


def test_open_file_is_served_up_to_its_last_flush(server, corpus):
    _, _, source = load_source(CAPTURES[0][0])
    w = PcapWriter(str(corpus.pcap_dir), "live", corpus.store, 1 << 30, 1e12)
    f1, p1 = w.write(PacketBatch.from_list(source[:20], 1, PRECISION_US))
    w.flush()
    f2, p2 = w.write(PacketBatch.from_list(source[20:30], 1, PRECISION_US))
    corpus.store.save_sessions(
        [
            _record_for("live-1-1", "live", f1, p1, source[:20]),
            _record_for("live-1-2", "live", f2, p2, source[20:30]),
        ]
    )
    status, _, body = server.get("/api/session/live-1-1.pcap")
    assert status == 200
    path = corpus.data_dir / "live.pcap"
    path.write_bytes(body)
    assert read_records(path)[2] == source[:20]
    assert_error(server, "/api/session/live-1-2.pcap", 410, "outside the file")

    w.flush()
    status, _, body = server.get("/api/session/live-1-2.pcap")
    path.write_bytes(body)
    assert status == 200 and read_records(path)[2] == source[20:30]
    w.close()


def _lose(file_num, pos, lost: list[int]):
    """The writer's arrays had packets `lost` not been written (disk full)."""
    file_num, pos = file_num.copy(), pos.copy()
    file_num[lost] = pos[lost] = -1
    return file_num, pos


@pytest.fixture
def unwritten(corpus):
    """Node vm: session 'part' lost 4 of its 10 packets, 'none' all of its 3."""
    _, _, source = load_source(CAPTURES[0][0])
    w = PcapWriter(str(corpus.pcap_dir), "vm", corpus.store, 1 << 30, 1e12)
    fn, pos = w.write(PacketBatch.from_list(source[:13], 1, PRECISION_US))
    w.close()
    lost = [0, 3, 4, 9, 10, 11, 12]
    fn, pos = _lose(fn, pos, lost)
    corpus.store.save_sessions(
        [
            _record_for("vm--1--1-part", "vm", fn[:10], pos[:10], source[:10]),
            _record_for("vm--1--1-none", "vm", fn[10:], pos[10:], source[10:13]),
        ]
    )
    return [p for i, p in enumerate(source[:10]) if i not in lost]


def test_unwritten_packets_are_skipped_and_the_written_served(
    server, corpus, unwritten, caplog
):
    caplog.set_level("INFO", logger="fpc.server")
    status, _, body = server.get("/api/session/vm--1--1-part.pcap")
    path = corpus.data_dir / "part.pcap"
    path.write_bytes(body)
    assert status == 200 and read_records(path)[2] == unwritten
    assert "not written at capture unwritten=4 records=1" in caplog.text


def test_session_with_no_packet_written_gives_410_saying_so(server, unwritten):
    status, body = server.get_json("/api/session/vm--1--1-none.pcap")
    assert status == 410
    assert "none of the 3 packets of session vm--1--1-none was written" in body["error"]
    assert "disk was full" in body["hint"] and "aged out" not in body["hint"]


def test_query_pcap_serves_every_packet_written(server, corpus, unwritten):
    status, _, body = server.get("/api/sessions.pcap?node=vm&limit=10000")
    path = corpus.data_dir / "query.pcap"
    path.write_bytes(body)
    assert status == 200 and read_records(path)[2] == unwritten


QUERY_TEXT = st.text(
    alphabet=st.sampled_from(
        "0123456789abcdefxyzTZ:.-+/%&=?;#[] \\'\"\x00\u00e9\u00b2\u0661\uff11"
    ),
    max_size=40,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=st.sampled_from(
        ["ip", "port", "protocol", "start", "end", "node", "limit", "x"]
    ),
    value=QUERY_TEXT,
    pcap=st.booleans(),
)
def test_hostile_query_values_give_200_or_400(server, name, value, pcap):
    path = "/api/sessions.pcap" if pcap else "/api/sessions"
    status, headers, body = server.get(f"{path}?{name}={urllib.parse.quote(value)}")
    assert status in (200, 400), body
    if status == 400:
        assert set(json.loads(body)) == {"error", "hint"}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(sid=QUERY_TEXT)
def test_hostile_session_ids_give_400_or_404(server, sid):
    status, _, body = server.get("/api/session/" + urllib.parse.quote(sid, safe=""))
    assert status in (400, 404), body
    assert set(json.loads(body)) == {"error", "hint"}


def test_client_gone_mid_stream_is_logged_and_server_keeps_serving(
    server, corpus, caplog
):
    _, _, source = load_source(CAPTURES[0][0])
    big = max(source, key=lambda p: len(p[2]))
    packets = [(big[0] + i, big[1], big[2]) for i in range(20000)]  # ~30 MB
    w = PcapWriter(str(corpus.pcap_dir), "bulk", corpus.store, 1 << 30, 1e12)
    fn, pos = w.write(PacketBatch.from_list(packets, 1, PRECISION_US))
    w.close()
    corpus.store.save_sessions([_record_for("bulk-1-1", "bulk", fn, pos, packets)])

    conn = socket.create_connection(("127.0.0.1", server.port))
    conn.sendall(b"GET /api/session/bulk-1-1.pcap HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # reset: the server's next writes fail
    deadline = time.monotonic() + 20
    while "pcap stream cut" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "pcap stream cut" in caplog.text
    sid, (_, want, _, _) = next(iter(corpus.sessions.items()))
    status, _, body = server.get(f"/api/session/{sid}.pcap")
    path = corpus.data_dir / "after.pcap"
    path.write_bytes(body)
    assert status == 200 and read_records(path)[2] == want


def test_pcapd_refuses_a_data_dir_without_a_session_database(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "fpc.server", "--data-dir", str(tmp_path / "typo")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no session database fpc.sqlite in" in result.stderr
    assert not (tmp_path / "typo").exists()
