"""App-layer parsers against real captures and Arkime's expected sessions.

Each test takes one session of a corpus pcap (packets picked by 5-tuple with
dpkt, in capture order), feeds its L4 payloads to `new_app_state` exactly as
the session table does, and compares the fields with the `.test` JSON Arkime
produced for the same capture. Arkime's names differ from ours: `http.host`
is our `url.domain`, `http.statuscode` is `http.response.status_code`, ...
"""

from __future__ import annotations

import functools
import ipaddress
import json
import socket

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CORPUS as _CORPUS  # noqa: E402
from fpc.appl import new_app_state, registered_names
from fpc.appl.dns import SECTION_FIELDS
from fpc.appl.fields import APP_FIELDS
from fpc.appl.state import MAX_HANDOFFS

CORPUS = _CORPUS / "arkime"
APP_FIELD_NAMES = {f.name for f in APP_FIELDS}


def _ip_of(frame: bytes, linktype: int) -> dpkt.ip.IP | dpkt.ip6.IP6 | None:
    if linktype == dpkt.pcap.DLT_EN10MB:
        ip = dpkt.ethernet.Ethernet(frame).data
        if isinstance(ip, dpkt.pppoe.PPPoE):
            ip = ip.data.data  # PPPoE session, PPP, IP
    elif linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        ip = dpkt.loopback.Loopback(frame).data
    elif linktype in (dpkt.pcap.DLT_RAW, 101, 228, 229):  # raw IP, IPv4, IPv6
        ip = dpkt.ip.IP(frame) if frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    else:
        return None
    if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.gre.GRE):
        ip = ip.data.data  # GRE carrying IP (gre-sample)
    return ip if isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) else None


def _addr(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def session_packets(name: str, body: dict) -> list[tuple[int, bytes, int | None, int]]:
    """(direction, payload, seq, flags) of one Arkime session, in capture order."""
    client = (body["source"]["ip"], body["source"]["port"])
    server = (body["destination"]["ip"], body["destination"]["port"])
    out = []
    with open(CORPUS / f"{name}.pcap", "rb") as f:
        reader = dpkt.pcap.Reader(f)
        for _ts, frame in reader:
            ip = _ip_of(frame, reader.datalink())
            l4 = ip.data if ip is not None else None
            if not isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
                continue
            src, dst = (_addr(ip.src), l4.sport), (_addr(ip.dst), l4.dport)
            if (src, dst) not in ((client, server), (server, client)):
                continue
            direction = 0 if src == client else 1
            if isinstance(l4, dpkt.tcp.TCP):
                out.append((direction, bytes(l4.data), l4.seq, l4.flags))
            else:
                out.append((direction, bytes(l4.data), None, 0))
    return out


def arkime_sessions(name: str, protocol: str) -> list[dict]:
    doc = json.loads((CORPUS / f"{name}.test").read_text())
    bodies = [s["body"] for s in doc["sessions3"]]
    return [b for b in bodies if protocol in b.get("protocol", [])]


def run_session(name: str, body: dict):  # noqa: ANN201
    transport = "tcp" if body.get("ipProtocol") == socket.IPPROTO_TCP else "udp"
    state = new_app_state(
        transport, body["source"]["port"], body["destination"]["port"]
    )
    for direction, payload, seq, flags in session_packets(name, body):
        state.feed(direction, payload, seq, flags)
    assert set(state.fields()) <= APP_FIELD_NAMES
    return state


def _no_port(host: str) -> str:
    return host.split(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _cut(value: str) -> str:
    return value[:1024]  # fpc.appl.sink.MAX_VALUE_CHARS


HTTP_CASES = [
    "http-301-get",
    "http-basicauth",
    "http-wrapped-header",
    "http-100-continue",
    "http-content-gzip",
    "http-no-length",
    "http-post-upload",
    "http-syn-ack",
    "http-tcp-seq-issue",
    "v6-http",
    "http-empty-useragent",
]


@pytest.mark.parametrize("name", HTTP_CASES)
def test_http_corpus_session_fields_match_arkime(name: str) -> None:
    for body in arkime_sessions(name, "http"):
        expect = body["http"]
        fields = run_session(name, body).fields()
        assert fields.get("http.request.method", []) == expect.get("method", [])
        got_status = set(fields.get("http.response.status_code", []))
        assert got_status == set(expect.get("statuscode", []))
        hosts = {_no_port(h) for h in expect.get("host", []) if h}
        assert set(fields.get("url.domain", [])) == hosts
        # Arkime leaves out `path` when there is no Host; its `uri` is the path then.
        uris = [u.split("?")[0] for u in expect.get("uri", []) if u.startswith("/")]
        paths = {_cut(p) for p in expect.get("path", uris)}
        assert set(fields.get("url.path", [])) == paths
        agents = {_cut(a) for a in expect.get("useragent", [])}
        assert set(fields.get("user_agent.original", [])) == agents
        versions = expect.get("clientVersion", []) + expect.get("serverVersion", [])
        assert set(fields["http.version"]) == set(versions)


def _dpkt_records(name: str, body: dict) -> dict[str, list[str]]:
    """Data of each section's records in the session, decoded by dpkt."""
    out: dict[str, list[str]] = {f: [] for f in SECTION_FIELDS}
    for _direction, payload, _seq, _flags in session_packets(name, body):
        msg = dpkt.dns.DNS(payload)
        for field, records in zip(
            SECTION_FIELDS, (msg.an, msg.ns, msg.ar), strict=True
        ):
            out[field] += [d for rr in records if (d := _dpkt_data(rr)) is not None]
    return {f: list(dict.fromkeys(data)) for f, data in out.items() if data}


def _dpkt_data(rr: dpkt.dns.DNS.RR) -> str | None:
    if rr.type in (dpkt.dns.DNS_A, dpkt.dns.DNS_AAAA):
        return _addr(rr.ip if rr.type == dpkt.dns.DNS_A else rr.ip6)
    names = {dpkt.dns.DNS_CNAME: "cname", dpkt.dns.DNS_NS: "nsname",
             dpkt.dns.DNS_PTR: "ptrname", dpkt.dns.DNS_MX: "mxname"}  # fmt: skip
    if rr.type in names:
        return str(getattr(rr, names[rr.type])).lower()
    if rr.type == dpkt.dns.DNS_TXT:
        return "".join(t.decode() if isinstance(t, bytes) else t for t in rr.text)
    return None


def _arkime_records(expect: list[dict]) -> set[str]:
    """Arkime's record data (every section, parseDNSRecordAll), canonical."""
    out = set()
    for e in expect:
        for a in e.get("answers", []):
            for key in ("ip", "cname", "mx", "nameserver", "txt", "caa"):
                if key in a:
                    value = "".join(a[key]) if key == "txt" else a[key]
                    out.add(_canonical(str(value).removeprefix("CAA ")))
    return out


def _canonical(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return _idna(value.lower())


@pytest.mark.parametrize(
    "name",
    [
        "dns-udp",
        "dns-mx",
        "dns-error",
        "curl-enabled-tls13",
        "dns-punycode",
        "dns-flags0000",
        "dns-flags0110",
        "dns-wiresharkrepo",
        "dns-notify",
    ],
)
# fmt: skip
def test_dns_corpus_session_fields_match_arkime_and_dpkt(name: str) -> None:
    for body in arkime_sessions(name, "dns"):
        expect = body["dns"] if isinstance(body["dns"], list) else [body["dns"]]
        state = run_session(name, body)
        fields = state.fields()
        assert state.protocols() == ["dns"] and state.errors == 0
        names = [n.lower() for n in fields["dns.question.name"]]
        # Arkime decodes punycode; fpc keeps names as they are on the wire.
        assert set(names) == {_idna(e["queryHost"]) for e in expect}
        assert set(fields["dns.question.type"]) == {e["qt"] for e in expect}
        statuses = {e["status"] for e in expect if "status" in e}
        assert set(fields["dns.op_code"]) == {e["opcode"] for e in expect}
        flags = {f for e in expect for f in e.get("headerFlags", [])}
        ours = set(fields.get("dns.header_flags", []))
        assert ours == flags  # both take the flags of responses
        assert set(fields.get("dns.response_code", [])) == statuses
        arkime_ips = {_addr(ipaddress.ip_address(ip).packed) for e in expect
                      for ip in e.get("ip", [])}  # fmt: skip
        assert set(fields.get("dns.resolved_ip", [])) == arkime_ips
        records = _dpkt_records(name, body)
        assert {f: fields[f] for f in SECTION_FIELDS if f in fields} == records
        ours = {v for f in records for v in fields[f]} - set(
            fields.get("fpc.dns.ptr", [])
        )
        assert ours == _arkime_records(expect)


def test_dns_caa_records_as_flags_tag_value() -> None:
    (body,) = arkime_sessions("dns-caa", "dns")
    fields = run_session("dns-caa", body).fields()
    assert set(fields["dns.answers.data"]) == _arkime_records(body["dns"])
    assert "0 issue letsencrypt.org" in fields["dns.answers.data"]


def test_dns_mdns_announcement_resolves_no_ip_but_keeps_records() -> None:
    # Responses without a question (mDNS announcements) answer no query.
    body = next(b for b in arkime_sessions("v6-http", "udp")
                if b["source"]["port"] == 5353)  # fmt: skip
    fields = run_session("v6-http", body).fields()
    assert "dns.resolved_ip" not in fields
    assert "2001:6f8:102d:0:999:39d7:ce98:6e1" in fields["dns.answers.data"]
    assert fields["fpc.dns.ptr"] == ["linux.local"]


def test_dns_glue_records_kept_apart_from_answers() -> None:
    body = next(b for b in arkime_sessions("dns-udp", "dns")
                if b["source"]["port"] == 62563)  # fmt: skip
    fields = run_session("dns-udp", body).fields()
    assert fields["dns.answers.data"] == ["github.com", "192.30.252.128"]
    assert fields["dns.resolved_ip"] == ["192.30.252.128"]
    assert "ns1.p16.dynect.net" in fields["fpc.dns.authority.data"]
    assert fields["fpc.dns.additional.data"] == ["10.2.95.12"]


def _idna(name: str) -> str:
    return name if name.isascii() else name.encode("idna").decode("ascii")


def _tls_version(arkime: str) -> str:
    """Arkime's 'TLSv1.2' / 'TLSv1' / 'SSLv3' as ECS writes it: '1.2', '1.0', '3.0'."""
    version = arkime.removeprefix("TLSv").removeprefix("SSLv")
    return version if "." in version else version + ".0"


@pytest.mark.parametrize(
    "name",
    ["openssl-tls1_2", "tls13", "curl-enabled-tls13", "tls-alpn-h2",
     "ssl-selfsign", "https-connect", "tls-client-sessionid", "badcurveball",
     "smtp-starttls", "ldap-ssl", "mysql-tls", "adb_synthetic"],
)  # fmt: skip
def test_tls_corpus_session_fields_match_arkime(name: str) -> None:
    for body in arkime_sessions(name, "tls"):
        expect = body["tls"]
        state = run_session(name, body)
        fields = state.fields()
        assert "tls" in state.protocols() and state.errors == 0
        assert fields["tls.client.ja3"] == expect["ja3"]
        assert fields["tls.server.ja3s"] == expect["ja3s"]
        assert fields["tls.cipher"] == expect["cipher"]
        assert fields["tls.version"] == [_tls_version(v) for v in expect["version"]]
        sni = body.get("http", {}).get("host", [])
        assert fields.get("tls.client.server_name", []) == sni
        if "http2" in body["protocol"]:  # Arkime labels ALPN h2 sessions http2
            assert fields["tls.next_protocol"] == ["h2"]
        assert ("http2" in state.protocols()) == ("http2" in body["protocol"])


def test_http2_cleartext_streams_match_arkime() -> None:
    (body,) = arkime_sessions("http2-nghttp2", "http2")
    expect = body["http"]
    state = run_session("http2-nghttp2", body)
    fields = state.fields()
    assert state.errors == 0 and set(state.protocols()) == {"http", "http2"}
    # Arkime's HTTP/1 parser also reads the preface as a request 'PRI *'.
    assert set(fields["http.request.method"]) == set(expect["method"]) - {"PRI"}
    assert set(fields["url.path"]) == set(expect["path"])  # one path is pushed
    assert fields["url.domain"] == expect["host"]
    assert fields["user_agent.original"] == expect["useragent"]
    assert set(fields["http.response.status_code"]) == set(expect["statuscode"])
    assert set(fields["fpc.http.body.md5"]) == set(expect["md5"])
    assert set(fields["fpc.http.body.sha256"]) == set(expect["sha256"])


def test_ssh_corpus_banners_match_arkime() -> None:
    (body,) = arkime_sessions("ssh2-moloch-crash", "ssh")
    state = run_session("ssh2-moloch-crash", body)
    fields = state.fields()
    banners = fields["fpc.ssh.client"] + fields["fpc.ssh.server"]
    assert sorted(b.lower() for b in banners) == sorted(body["ssh"]["version"])
    assert state.protocols() == ["ssh"] and not state.wants_more


@pytest.mark.parametrize(
    "name",
    ["socks-http-example", "socks-https-example", "socks4-https",
     "socks5-http-302", "socks5-reverse"],
)  # fmt: skip
def test_socks_corpus_destination_and_tunnelled_protocol_match_arkime(
    name: str,
) -> None:
    for body in arkime_sessions(name, "socks"):
        expect = body["socks"]
        state = run_session(name, body)
        fields = state.fields()
        assert state.errors == 0
        host = expect.get("host") or expect.get("ip")
        assert fields["fpc.socks.host"] == [host]
        assert fields["fpc.socks.port"] == [expect["port"]]
        users = [expect["user"]] if "user" in expect else []
        assert fields.get("fpc.socks.user", []) == users
        inner = [p for p in state.protocols() if p != "socks"]
        assert inner and set(inner) <= set(body["protocol"])
        if "method" in body.get("http", {}):
            assert fields["http.request.method"] == body["http"]["method"]
        if "tls" in body and "ja3" in body["tls"]:
            assert fields["tls.client.ja3"] == body["tls"]["ja3"]


def _all_sessions() -> list[tuple[str, dict]]:
    out = []
    for test in sorted(CORPUS.glob("*.test")):
        doc = json.loads(test.read_text())
        for session in doc["sessions3"]:
            body = session["body"]
            if body.get("ipProtocol") in (6, 17) and "port" in body["source"]:
                out.append((test.stem, body))
    return out


def test_every_corpus_session_protocols_are_a_subset_of_arkimes() -> None:
    """No false positives on 140+ real captures, and feed never raises."""
    checked = 0
    for name, body in _all_sessions():
        if name == "tcp-reassembly-synthetic":
            continue  # reuses one 5-tuple for two sessions; split by the session table
        state = run_session(name, body)
        arkime = {"dns" if p == "mdns" else p for p in body.get("protocol", [])}
        assert set(state.protocols()) <= arkime, name
        checked += 1
    assert checked > 100


FUZZ_SESSIONS = {"http-301-get": "http", "openssl-tls1_2": "tls", "tls13": "tls",
                 "dns-udp": "dns", "dns-mx": "dns", "ssh2-moloch-crash": "ssh",
                 "http-wrapped-header": "http"}  # fmt: skip


@functools.cache
def _first_session(name: str) -> tuple[dict, list]:
    body = arkime_sessions(name, FUZZ_SESSIONS[name])[0]
    return body, session_packets(name, body)


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(FUZZ_SESSIONS)),
    flips=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 3000), st.integers(0, 255)),
        max_size=5,
    ),
    drop=st.sets(st.integers(0, 60), max_size=4),
    cut=st.integers(0, 3000),
)
def test_corpus_sessions_with_damaged_packets_never_raise(
    name: str, flips: list[tuple[int, int, int]], drop: set[int], cut: int
) -> None:
    body, packets = _first_session(name)
    pkts = [list(p) for p in packets]
    for which, pos, value in flips:
        payload = bytearray(pkts[which % len(pkts)][1])
        if payload:
            payload[pos % len(payload)] = value
            pkts[which % len(pkts)][1] = bytes(payload)
    last = pkts[-1]
    last[1] = last[1][: cut % (len(last[1]) + 1)]
    transport = "tcp" if body["ipProtocol"] == socket.IPPROTO_TCP else "udp"
    state = new_app_state(
        transport, body["source"]["port"], body["destination"]["port"]
    )
    for i, (direction, payload, seq, flags) in enumerate(pkts):
        if i not in drop:
            state.feed(direction, payload, seq, flags)
    assert set(state.fields()) <= APP_FIELD_NAMES
    assert state.errors <= (1 + MAX_HANDOFFS) * len(registered_names())
