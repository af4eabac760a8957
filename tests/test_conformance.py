"""Conformance against Arkime's test captures: the whole run and its pieces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import CORPUS
from fpc.conformance import (
    APP,
    L3L4,
    Explanation,
    active_specs,
    arkime_side,
    compare_pair,
    fpc_side,
    iso_to_ms,
    join_parts,
    load_explanations,
    main,
    match_sessions,
    norm_dns_name,
    norm_host,
    norm_ip,
    norm_mac,
    norm_protocols,
    norm_rcode,
    norm_tls_version,
    orient,
    run,
    uri_parts,
)
from fpc.conformance_app import (
    address_part,
    fpc_krb5_etypes,
    hex_digits,
    http_version,
    key_algorithm,
    ldap_auth,
    ldap_bind_dns,
    ntp_stratum,
    serial,
    to_ms,
)

# Measured on the visible arkime/ corpus (rounded down). The targets are 99 %
# of sessions matched, 99 % of L3/L4 values and 95 % of each app-layer field.
SESSIONS_MEASURED = 99  # sessions.arkime agreed %
L3L4_MEASURED = 97
APP_FIELDS_MET = (
    "http.method", "http.host", "http.path", "http.uri", "http.statuscode",
    "http.useragent", "dns.qt", "dns.status", "tls.version", "tls.cipher",
    "tls.ja3", "tls.ja3s", "ssh.version", "socks.host", "socks.port", "socks.user",
    "cert.subjectCN", "cert.subjectON", "cert.issuerCN", "cert.issuerON",
    "cert.serial", "cert.notBefore", "cert.notAfter", "cert.alt",
    "cert.publicAlgorithm", "cert.hash", "tls.ja4", "ssh.hassh", "ssh.hasshServer",
    "quic.useragent", "email.smtpHello", "email.src", "email.folder", "dhcp.mac",
    "dhcp.requestIp", "krb5.cname", "krb5.sname", "krb5.realm", "krb5.etype",
    "ldap.authtype", "ldap.bindname", "ntlm.host", "snmp.version",
    "snmp.community", "snmp.variable", "snmp.error", "snmp.engineId",
    "snmp.secLevel", "ntp.version", "ntp.mode", "ntp.stratum", "ntp.refId",
    "mysql.version", "mysql.user", "postgresql.user", "postgresql.db",
    "postgresql.app", "radius.msgType", "radius.user", "radius.nasIp",
    "radius.nasPort", "radius.framedIp", "radius.mac", "irc.nick", "irc.channel",
    "stun.type", "stun.username", "stun.realm", "stun.error",
    "rdp.requestedProtocols", "rdp.selectedProtocol", "http.md5", "http.sha256",
    "http.version", "http.authType", "http.user", "dns.opcode", "dns.headerFlags",
    "tls.sni (http.host)", "stun.xorMappedIp", "stun.xorMappedPort",
    "stun.xorRelayedIp", "stun.xorRelayedPort", "stun.xorPeerIp", "stun.xorPeerPort",
    "mqtt.version", "mqtt.type", "mqtt.clientId", "mqtt.topic", "mqtt.willTopic",
    "mqtt.connackCode", "user", "dhcp.type", "dhcp.id", "bacnet.function",
    "bacnet.apduType", "dnp3.src",
    "dnp3.dst", "dnp3.func", "dnp3.funcName", "adb.command", "adb.version",
    "adb.serial", "adb.service", "adb.maxpayload", "adb.systemtype", "adb.authtype",
)  # fmt: skip
# Fields below the 95 % target: measured agreed % (rounded down). Every
# difference left in them is explained (docs/conformance-explained.toml) and
# most rows hold a handful of sessions, where one session is 5 to 50 %.
APP_FIELDS_BELOW = {
    # TODO: 77 % on 9 sessions: one query is longer than fpc's 1024-character
    # value limit, and Arkime's regression config rewrites another.
    "http.uri.query": 77,
    # TODO: 91 % on 24 sessions: fpc's 60 s UDP idle timeout splits a session
    # Arkime keeps (dns-wiresharkrepo), and Arkime keeps only the first
    # question of an mDNS message (v6-http).
    "dns.queryHost": 91,
    # TODO: the same timeout split is the only difference left in these.
    "dns.ip": 80,
    "dns.answers": 90,
    # TODO: Arkime reads no IETF QUIC (quicietfooo); 4 and 5 sessions.
    "quic.version": 75,
    "quic.host": 80,
    # TODO: Arkime's IMAP parser reads From, To and Subject only, and their
    # first lines; it keeps white space RFC 2047 drops (one session each).
    "email.dst": 93,
    "email.subject": 80,
    "email.id": 90,
    "email.contentType": 92,
    "email.useragent": 87,
    # TODO: in SMB Arkime reads only the NTLM AUTHENTICATE message (3 sessions).
    "ntlm.domain": 93,
    "ntlm.version": 82,
    "ntlm.targetName": 78,
    "ntlm.type": 82,
    # TODO: Arkime reads no SNMPv3 PDU (3 sessions of 12).
    "snmp.type": 75,
    # TODO: Arkime keeps two BACnet sessions open across gaps longer than
    # fpc's 60 s UDP timeout (bacnet-stack-services); 2 sessions of 12.
    "bacnet.service": 83,
}


@pytest.fixture(scope="module")
def report() -> dict:
    if not (CORPUS / "arkime").is_dir():
        pytest.fail(f"Arkime captures not found at {CORPUS}/arkime; set FPC_CORPUS")
    return run(CORPUS)


# --- the whole run -----------------------------------------------------------


def test_conformance_report_well_formed(report: dict) -> None:
    pairs = {p.stem for p in (CORPUS / "arkime").glob("*.pcap")}
    assert set(report["captures"]) == pairs
    assert set(report["summary"]) == {"session", "l3l4", "app"}
    for name, row in report["fields"].items():
        counted = row["agree"] + row["explained"] + row["differ"]
        assert row["compared"] == counted > 0, name
        assert row["group"] in ("session", L3L4, APP), name
    for cap in report["captures"].values():
        assert cap["matched"] <= min(cap["arkime_sessions"], cap["fpc_records"])
        for diff in cap["differences"]:
            assert diff["status"] in ("explained", "differ")
            assert (diff["status"] == "explained") == bool(diff.get("reason"))


def test_conformance_sessions_matched_meets_target(report: dict) -> None:
    # 381 of 384; the 3 left are explained: AH keyed by the protocol behind
    # it, QinQ VLANs in Arkime's key, ARP inside VXLAN.
    assert report["fields"]["sessions.arkime"]["agree_pct"] >= SESSIONS_MEASURED


def test_conformance_l3l4_at_least_measured(report: dict) -> None:
    # TODO: 97 % of L3/L4 values agree against a 99 % target (99.9 % with the
    # explained ones); Community ID without ports (fpc follows the
    # specification), sessions Arkime keys or times out differently, and its
    # test setup's cut packet lists cost most.
    assert report["summary"]["l3l4"] >= L3L4_MEASURED


@pytest.mark.parametrize("name", APP_FIELDS_MET)
def test_conformance_app_field_meets_target(report: dict, name: str) -> None:
    assert report["fields"][name]["agree_pct"] >= 95


@pytest.mark.parametrize("name", sorted(APP_FIELDS_BELOW))
def test_conformance_app_field_at_least_measured(report: dict, name: str) -> None:
    assert report["fields"][name]["agree_pct"] >= APP_FIELDS_BELOW[name]


def test_conformance_every_difference_is_explained(report: dict) -> None:
    open_ones = {
        (capture, d["field"], d["session"])
        for capture, cap in report["captures"].items()
        for d in cap["differences"]
        if d["status"] == "differ"
    }
    assert not open_ones


def test_conformance_explanations_file_loads() -> None:
    entries = load_explanations()
    assert entries and all(e.reason for e in entries)


# --- matching ------------------------------------------------------------------


def arkime_body(src: str, sport: int, dst: str, dport: int, first_ms: int) -> dict:
    return {
        "ipProtocol": 6,
        "source": {"ip": src, "port": sport, "packets": 2, "bytes": 120},
        "destination": {"ip": dst, "port": dport, "packets": 1, "bytes": 60},
        "firstPacket": first_ms,
        "lastPacket": first_ms + 5,
        "client.bytes": 0,
        "protocol": ["tcp"],
    }


def fpc_record(src: str, sport: int, dst: str, dport: int, start: str) -> dict:
    return {
        "event": {"start": start, "end": start},
        "source": {"ip": src, "port": sport, "packets": 2, "bytes": 120},
        "destination": {"ip": dst, "port": dport, "packets": 1, "bytes": 60},
        "network": {"iana_number": "6", "packets": 3, "bytes": 180},
        "fpc": {"protocols": ["tcp"], "source": {"payload_bytes": 0}},
    }


def test_match_sessions_either_orientation_pairs() -> None:
    a = arkime_side(arkime_body("10.0.0.1", 1000, "10.0.0.2", 80, 1_000))
    f = fpc_side(fpc_record("10.0.0.2", 80, "10.0.0.1", 1000, "1970-01-01T00:00:01Z"))
    m = match_sessions([a], [f])
    assert m.pairs == [(a, f)] and not m.arkime_only and not m.fpc_only


def test_match_sessions_same_tuple_pairs_closest_first_packets() -> None:
    ark = [arkime_side(arkime_body("10.0.0.1", 1, "10.0.0.2", 2, t)) for t in (0, 9000)]
    ours = [
        fpc_side(fpc_record("10.0.0.1", 1, "10.0.0.2", 2, f"1970-01-01T00:00:0{s}Z"))
        for s in (9, 0)
    ]
    m = match_sessions(ark, ours)
    assert {(a.first_ms, f.first_ms) for a, f in m.pairs} == {(0, 0), (9000, 9000)}


def test_match_sessions_outside_window_leaves_both_unmatched() -> None:
    a = arkime_side(arkime_body("10.0.0.1", 1, "10.0.0.2", 2, 0))
    f = fpc_side(fpc_record("10.0.0.1", 1, "10.0.0.2", 2, "1970-01-01T00:05:00Z"))
    m = match_sessions([a], [f])
    assert not m.pairs and m.arkime_only == [a] and m.fpc_only == [f]


def test_join_parts_sums_the_documents_of_one_saved_session() -> None:
    first = arkime_body("10.0.0.1", 1000, "10.0.0.2", 80, 1_000)
    first.update(packetLen=[70, 70, 70], tcpflags={"syn": 1, "psh": 0})
    later = arkime_body("10.0.0.1", 1000, "10.0.0.2", 80, 1_000)
    later.update(lastPacket=9_000, packetLen=[80, 80, 80])
    later["tcpflags"] = {"syn": 0, "psh": 2}
    other = arkime_body("10.0.0.1", 1001, "10.0.0.2", 80, 1_000)
    [joined, alone] = join_parts([first, later, other])
    assert joined["source"]["packets"] == 4 and joined["destination"]["bytes"] == 120
    assert joined["packetLen"] == [70, 70, 70, 80, 80, 80]
    assert joined["tcpflags"] == {"syn": 1, "psh": 2}
    assert (joined["firstPacket"], joined["lastPacket"]) == (1_000, 9_000)
    assert joined["source"]["port"] == 1000 and joined["protocol"] == ["tcp"]
    assert alone == other


def test_orient_swaps_sides_to_arkime_client() -> None:
    a = arkime_side(arkime_body("10.0.0.1", 1000, "10.0.0.2", 80, 0))
    record = fpc_record("10.0.0.2", 80, "10.0.0.1", 1000, "1970-01-01T00:00:00Z")
    oriented, swapped = orient(record, a)
    assert swapped and oriented["source"]["ip"] == "10.0.0.1"
    assert oriented["fpc"]["destination"] == {"payload_bytes": 0}


def test_compare_pair_reports_swap_and_counts() -> None:
    a = arkime_side(arkime_body("10.0.0.1", 1000, "10.0.0.2", 80, 0))
    f = fpc_side(fpc_record("10.0.0.2", 80, "10.0.0.1", 1000, "1970-01-01T00:00:00Z"))
    out = {o.field: o for o in compare_pair("cap", a, f, active_specs(), [])}
    assert out["orientation"].status == "differ"
    assert out["source.packets"].arkime == 2 and out["source.packets"].fpc == 1


def test_compare_pair_explained_difference_is_not_agreed() -> None:
    a = arkime_side(arkime_body("10.0.0.1", 1000, "10.0.0.2", 80, 0))
    f = fpc_side(fpc_record("10.0.0.1", 1000, "10.0.0.2", 80, "1970-01-01T00:00:00Z"))
    f.doc["network"]["packets"] = 4
    why = Explanation("cap", "network.packets", "a reason", "6 *")
    out = {o.field: o for o in compare_pair("cap", a, f, active_specs(), [why])}
    assert out["network.packets"].status == "explained"
    assert out["network.packets"].reason == "a reason"
    assert out["source.packets"].status == "agree"


# --- normalization and explanations ------------------------------------------------


@pytest.mark.parametrize(
    ("func", "raw", "want"),
    [
        (norm_mac, "00-1F-5B-FF-51-CB", "00:1f:5b:ff:51:cb"),
        (norm_ip, "2606:4700:0000:0000:0000:0000:6810:7d22", "2606:4700::6810:7d22"),
        (norm_host, "192.168.57.14:8080", "192.168.57.14"),
        (norm_host, "[2001:db8::1]:80", "2001:db8::1"),
        (norm_host, "WWW.Example.com", "www.example.com"),
        (norm_host, "host:\u00b2", "host:\u00b2"),
        (norm_dns_name, ".", "<root>"),
        (norm_dns_name, "xn--80a0adav.xn--80ao21a", "уаноо.қаз"),
        (norm_rcode, "NOTIMP", "NOTIMPL"),
    ],
)
def test_normalizers_map_to_arkime_spelling(func, raw: str, want: str) -> None:
    assert func(raw) == want


@pytest.mark.parametrize(
    ("func", "raw", "want"),
    [
        (hex_digits, "af:cc:00:61", "afcc0061"),
        (serial, "00D1C3", "d1c3"),
        (serial, "5ecb7c", "5ecb7c"),
        (to_ms, "2020-03-23T07:15:42Z", 1584947742000),
        (key_algorithm, "id-ecPublicKey", "ECDSA"),
        (ntp_stratum, 0, "unspecified"),
        (ntp_stratum, 3, "secondary"),
        (ntp_stratum, 16, "unsynchronized"),
        (ntp_stratum, "\u00b2", "\u00b2"),
        (http_version, "2", "2.0"),
        (ldap_auth, "ntlmsspAuth", "ntlm"),
        (address_part(True, int), "[2001:db8::1]:3478", 3478),
        (address_part(False, norm_ip), "[2001:db8::1]:3478", "2001:db8::1"),
    ],
)
def test_app_detail_normalizers_map_to_one_spelling(func, raw, want) -> None:
    assert func(raw) == want


def test_app_detail_rows_drop_arkime_placeholders() -> None:
    assert ldap_bind_dns({"ldap": {"bindname": ["<ROOT>", "cn=a"]}}) == {"cn=a"}
    etypes = {"fpc": {"krb5": {"etype": ["rc4-hmac", "-128", "\u0661"]}}}
    assert fpc_krb5_etypes(etypes) == {"rc4-hmac", "\u0661"}


@pytest.mark.parametrize(
    ("version", "protocol", "want"),
    [
        ("1.2", "tls", "TLSv1.2"),
        ("1.0", "tls", "TLSv1"),
        ("3.0", "ssl", "SSLv3"),
        ("1.3-draft-18", "tls", "TLSv1.3-draft-18"),
    ],
)
def test_norm_tls_version_matches_arkime(
    version: str, protocol: str, want: str
) -> None:
    assert norm_tls_version(version, protocol) == want


def test_uri_parts_strip_host_and_scheme() -> None:
    assert uri_parts("www.github.com/a/b?x=1") == ("/a/b", "x=1")
    assert uri_parts("http://h.example/p") == ("/p", "")
    assert uri_parts("ts01-b.cloudsink.net:443") == ("", "")


def test_iso_to_ms_truncates_nanoseconds() -> None:
    assert iso_to_ms("2013-11-25T15:55:28.482374000Z") == 1385394928482


def test_norm_protocols_maps_and_drops_names() -> None:
    got = norm_protocols(["udp", "vlan", "ipv6-icmp", "88", "gre", "ipip", "\u00b9"])
    assert got == {"udp", "icmp", "unknown-ip", "gre", "\u00b9"}


def test_explanation_patterns_and_when() -> None:
    e = Explanation("*", "*.mac", "why", when="fpc_subset")
    a, f = frozenset({"a", "b"}), frozenset({"a"})
    assert e.covers("any", "source.mac", "6 x", a, f)
    assert not e.covers("any", "source.mac", "6 x", f, a)
    assert not e.covers("any", "source.bytes", "6 x", a, f)


def test_explanation_field_list_matches_any_row() -> None:
    e = Explanation("*", ("client.bytes", "totDataBytes"), "why", "1 *", "fpc_smaller")
    assert e.covers("c", "totDataBytes", "1 a > b", 16, 8)
    assert not e.covers("c", "source.bytes", "1 a > b", 16, 8)
    assert not e.covers("c", "client.bytes", "6 a > b", 16, 8)


def test_explanation_cut_needs_fpc_limit_length() -> None:
    e = Explanation("*", "http.*", "why", when="fpc_cut")
    long = "q" * 1500
    assert e.covers(
        "c", "http.uri.query", "6 x", frozenset({long}), frozenset({long[:1024]})
    )
    assert not e.covers(
        "c", "http.method", "6 x", frozenset({"GET", "POST"}), frozenset({"GET"})
    )


def test_explanation_unknown_when_is_rejected() -> None:
    with pytest.raises(ValueError, match="when = 'sometimes' is unknown"):
        Explanation("*", "*", "why", when="sometimes")


def test_main_only_one_capture_writes_json(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    args = ["--corpus", str(CORPUS), "--only", "http-301-get", "--json", str(out)]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert list(report["captures"]) == ["http-301-get"]
    assert report["captures"]["http-301-get"]["matched"] == 1
    assert "http.method" in capsys.readouterr().out


def test_main_missing_corpus_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["--corpus", str(tmp_path)]) == 2
    assert "set FPC_CORPUS" in capsys.readouterr().err


def test_main_unreadable_explained_file_exits_2(tmp_path: Path, capsys) -> None:
    args = ["--corpus", str(CORPUS), "--explained", str(tmp_path / "none.toml")]
    assert main(args) == 2
    assert "pass --explained FILE" in capsys.readouterr().err


def test_run_only_unknown_capture_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no NAME.pcap .* pass --corpus DIR"):
        run(tmp_path)
