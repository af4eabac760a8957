"""NTP, SNMP, MySQL and PostgreSQL against Arkime's expected sessions.

Arkime spells some values its own way: NTP strata as names ("secondary" for
2 to 15), SNMP v2c as version 2 (fpc too), its `snmp.variable` as the dotted
OIDs. Damaged input of each is fed too: at most one error, never a raise.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state

STRATA = {"unspecified": range(0, 1), "primary": range(1, 2), "secondary": range(2, 16)}


@pytest.mark.parametrize("name", ["gre-sample", "ospf"])
def test_ntp_fields_match_arkime(name: str) -> None:
    for body in arkime_sessions(name, "ntp"):
        got, want = run_session(name, body).fields(), body["ntp"]
        assert got["fpc.ntp.version"] == want["version"]
        assert set(got["fpc.ntp.mode"]) == set(want["mode"])
        assert set(got["fpc.ntp.reference_id"]) == set(want["refId"])
        # Arkime keeps the server's stratum; the client's is in fpc's list too.
        assert any(s in STRATA[want["stratum"][0]] for s in got["fpc.ntp.stratum"])


def test_snmp_v2c_fields_match_arkime() -> None:
    bodies = arkime_sessions("SNMPv2c_get_requests", "snmp")
    assert len(bodies) == 4
    for body in bodies:
        state = run_session("SNMPv2c_get_requests", body)
        got, want = state.fields(), body["snmp"]
        assert state.errors == 0
        assert got["fpc.snmp.version"] == want["version"]
        assert got["fpc.snmp.community"] == want["community"]
        assert got["fpc.snmp.pdu_type"] == want["type"]
        assert got["fpc.snmp.oid"] == want["variable"]


def test_snmp_v1_v2c_v3_fields_match_arkime_where_the_packets_are_whole() -> None:
    # The synthetic capture has BER lengths one byte too long in several
    # packets; fpc counts an error there and keeps what it read before it.
    for body in arkime_sessions("snmpv3_synthetic", "snmp"):
        state = run_session("snmpv3_synthetic", body)
        got, want = state.fields(), body["snmp"]
        assert got["fpc.snmp.version"] == want["version"]
        assert got.get("fpc.snmp.community", []) == want.get("community", [])
        if want["version"] == [3]:
            # The USM SEQUENCE overstates its length; its OCTET STRING bounds it.
            assert got["fpc.snmp.engine_id"] == want["engineId"]
            assert got["fpc.snmp.user"] == body["user"]
            # Arkime reads no PDU of a v3 message; fpc reads the unencrypted one.
            assert got["fpc.snmp.pdu_type"] == ["GetRequest"] and "type" not in want
        else:
            assert got.get("fpc.snmp.pdu_type", []) == want.get("type", [])
        assert got.get("fpc.snmp.error_status", []) == want.get("error", [])
        assert got.get("fpc.snmp.security_level", []) == want.get("secLevel", [])
        assert state.errors == (0 if "variable" in want else 1)
        assert got.get("fpc.snmp.oid", []) == want.get("variable", [])


def _tlv(tag: int, value: bytes) -> bytes:
    assert len(value) < 128
    return bytes([tag, len(value)]) + value


def _int(n: int) -> bytes:
    return _tlv(0x02, bytes([n]))


def test_snmp_v3_usm_engine_id_and_user() -> None:
    # RFC 3412 and RFC 3414 structures built from their ASN.1 definitions.
    engine = _tlv(0x04, bytes.fromhex("80001f8880123456789abc"))
    usm = _tlv(
        0x30, engine + _int(0) + _int(0) + _tlv(0x04, b"admin") + 2 * b"\x04\x00"
    )
    header = _tlv(
        0x30, _int(1) + _tlv(0x02, b"\x10\x00") + _tlv(0x04, b"\x04") + _int(3)
    )
    oid = _tlv(0x06, bytes.fromhex("2b06010201"))
    bindings = _tlv(0x30, _tlv(0x30, oid + b"\x05\x00"))
    pdu = _tlv(0xA0, _int(1) + _int(0) + _int(0) + bindings)
    scoped = _tlv(0x30, _tlv(0x04, b"") + _tlv(0x04, b"") + pdu)
    msg = _tlv(0x30, _int(3) + header + _tlv(0x04, usm) + scoped)
    state = new_app_state("udp", 40000, 161)
    state.feed(0, msg, None, 0)
    got = state.fields()
    assert state.errors == 0
    assert got["fpc.snmp.engine_id"] == ["80001f8880123456789abc"]
    assert got["fpc.snmp.user"] == ["admin"]
    assert got["fpc.snmp.security_level"] == ["noAuthNoPriv"]
    assert got["fpc.snmp.oid"] == ["1.3.6.1.2.1"]


@pytest.mark.parametrize(
    "name", ["mysql-allow", "mysql-deny", "no-syn-ack", "mysql-tls"]
)
def test_mysql_version_and_user_match_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "mysql")
    state = run_session(name, body)
    got, want = state.fields(), body["mysql"]
    assert state.errors == 0
    assert got["fpc.mysql.version"] == [want["version"]]
    assert got.get("fpc.mysql.user", []) == ([want["user"]] if "user" in want else [])


def test_mysql_ssl_request_hands_the_session_to_tls() -> None:
    (body,) = arkime_sessions("mysql-tls", "mysql")
    state = run_session("mysql-tls", body)
    assert state.protocols() == ["mysql", "tls"]
    assert state.fields()["tls.client.ja4"] == body["tls"]["ja4"]


@pytest.mark.parametrize("name", ["postgres-badpass", "postgres-no-sslrequest"])
def test_postgresql_startup_matches_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "postgresql")
    state = run_session(name, body)
    got, want = state.fields(), body["postgresql"]
    assert state.errors == 0
    assert got["fpc.postgresql.user"] == [want["user"]]
    assert got["fpc.postgresql.database"] == [want["db"]]
    app = got.get("fpc.postgresql.application_name", [])
    assert app == ([want["app"]] if "app" in want else [])


def test_postgresql_ssl_refused_then_startup_in_clear() -> None:
    startup = b"\x00\x03\x00\x00user\x00u1\x00database\x00d1\x00\x00"
    startup = (len(startup) + 4).to_bytes(4, "big") + startup
    state = new_app_state("tcp", 40000, 5432)
    state.feed(0, bytes.fromhex("0000000804d2162f"), 1000, 0x18)
    state.feed(1, b"N", 5000, 0x18)
    state.feed(0, startup, 1008, 0x18)
    got = state.fields()
    assert got["fpc.postgresql.user"] == ["u1"]
    assert got["fpc.postgresql.database"] == ["d1"]


DAMAGE_CASES = [
    ("SNMPv2c_get_requests", "snmp", "udp"),
    ("gre-sample", "ntp", "udp"),
    ("mysql-allow", "mysql", "tcp"),
    ("postgres-badpass", "postgresql", "tcp"),
]


@settings(max_examples=200, deadline=None)
@given(
    case=st.sampled_from(DAMAGE_CASES),
    cut=st.integers(min_value=0, max_value=300),
    flips=st.lists(st.integers(min_value=0, max_value=299), max_size=4),
)
def test_damaged_first_messages_are_counted_never_raised(
    case: tuple[str, str, str], cut: int, flips: list[int]
) -> None:
    name, proto, transport = case
    body = arkime_sessions(name, proto)[0]
    state = new_app_state(
        transport, body["source"]["port"], body["destination"]["port"]
    )
    seqs = [1000, 5000]
    for direction, payload, _, _ in session_packets(name, body)[:6]:
        data = bytearray(payload[:cut])
        for i in flips:
            if i < len(data):
                data[i] ^= 0x3C
        seq = seqs[direction] if transport == "tcp" else None
        state.feed(direction, bytes(data), seq, 0x18 if seq else 0)
        seqs[direction] += len(data)
    assert state.errors <= 1


def test_radius_fields_match_arkime() -> None:
    (body,) = arkime_sessions("radius", "radius")
    state = run_session("radius", body)
    got, want = state.fields(), body["radius"]
    assert state.errors == 0
    assert got["fpc.radius.message_type"] == want["msgType"]
    assert got["fpc.radius.user"] == want["user"]
    assert got["fpc.radius.nas_ip"] == want["nasIp"]
    assert got["fpc.radius.nas_port"] == want["nasPort"]
    assert got["fpc.radius.framed_ip"] == want["framedIp"]
    assert got["fpc.radius.mac"] == want["mac"]


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 200), flips=st.lists(st.integers(0, 199), max_size=4))
def test_radius_damaged_packet_is_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    (body,) = arkime_sessions("radius", "radius")
    data = bytearray(session_packets("radius", body)[0][1][:cut])
    for i in flips:
        if i < len(data):
            data[i] ^= 0x11
    state = new_app_state("udp", 45210, 1813)
    state.feed(0, bytes(data), None, 0)
    assert state.errors <= 1
