"""TLS certificates, JA4 and SSLv2 hellos against Arkime's expected sessions.

Each case runs one session of an Arkime capture through `new_app_state` (see
`test_appl_corpus`) and compares with the `cert` and `tls` objects of the
`.test` JSON Arkime produced for it. Arkime lowercases common names and orders
a chain its own way, so names compare lowercased and lists as sets.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state
from fpc.appl.ja4 import HelloParts, ja4
from fpc.appl.x509 import serial_hex

CERT_CASES = [
    "badcurveball", "https-connect", "https-generalizedtime", "https3-301-get",
    "ldap-ssl", "mysql-tls", "openssl-ssl3", "openssl-tls1", "openssl-tls1_2",
    "openssl-tls1-tls1_2", "openssl-tls1_2-tls1", "smtp-starttls", "ssl-selfsign",
    "tls-alpn-h2", "pppoe", "socks-https-example",  # 149 SANs in one certificate
]  # fmt: skip
JA4_CASES = [
    "adb_synthetic", "badcurveball", "curl-enabled-tls13", "https-connect",
    "https-generalizedtime", "https3-301-get", "ldap-ssl", "mysql-tls",
    "openssl-ssl3", "openssl-tls1", "openssl-tls1_2", "smtp-starttls",
    "ssl-selfsign", "tls-alpn-h2", "tls-client-sessionid", "tls13",
]  # fmt: skip


def _ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lower(values: object) -> set[str]:
    return {str(v).lower() for v in values}  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", CERT_CASES)
def test_tls_certificates_match_arkime(name: str) -> None:
    bodies = [b for b in arkime_sessions(name, "tls") if b.get("cert")]
    assert bodies
    for body in bodies:
        certs = body["cert"]
        state = run_session(name, body)
        got = state.fields()
        x = "tls.server.x509."
        assert state.errors == 0
        assert got[x + "serial_number"] == _serials(certs)
        assert set(got["tls.server.hash.sha1"]) == {
            c["hash"].replace(":", "").upper() for c in certs
        }
        assert set(got[x + "not_before"]) == {_ms_to_iso(c["notBefore"]) for c in certs}
        assert set(got[x + "not_after"]) == {_ms_to_iso(c["notAfter"]) for c in certs}
        want_cn = {n for c in certs for n in c.get("subjectCN", [])}
        assert _lower(got.get(x + "subject.common_name", [])) == want_cn
        want_cn = {n for c in certs for n in c.get("issuerCN", [])}
        assert _lower(got.get(x + "issuer.common_name", [])) == want_cn
        want_alt = {n for c in certs for n in c.get("alt", [])}
        assert _lower(got.get(x + "alternative_names", [])) == want_alt


def _serials(certs: list[dict]) -> list[str]:
    """Arkime's serials in fpc's order (the order of the wire, leaf first)."""
    return sorted((c["serial"].upper() for c in certs), key=_wire_rank(certs))


def _wire_rank(certs: list[dict]):  # noqa: ANN202
    # Arkime lists the chain in no fixed order; the leaf is the certificate
    # whose subject is no other certificate's issuer.
    issuers = {cn for c in certs for cn in c.get("issuerCN", [])}

    def rank(serial: str) -> int:
        cert = next(c for c in certs if c["serial"].upper() == serial)
        return 0 if not set(cert.get("subjectCN", [])) & issuers else 1

    return rank


@pytest.mark.parametrize("name", JA4_CASES)
def test_tls_ja4_matches_arkime(name: str) -> None:
    for body in arkime_sessions(name, "tls"):
        want = body.get("tls", {}).get("ja4")
        if want:
            assert run_session(name, body).fields()["tls.client.ja4"] == want


def test_tls_ssl2_hello_then_sslv3_server_matches_arkime() -> None:
    (body,) = arkime_sessions("pppoe", "tls")
    packets = session_packets("pppoe", body)
    first = next(p for d, p, _, _ in packets if d == 0 and p)
    assert first[0] & 0x80 and first[2] == 1  # an SSLv2-format CLIENT-HELLO
    state = run_session("pppoe", body)
    got = state.fields()
    assert state.protocols() == ["tls"]
    assert got["tls.version"] == ["3.0"]
    assert got["tls.cipher"] == body["tls"]["cipher"]
    assert got["tls.server.ja3s"] == body["tls"]["ja3s"]
    assert "tls.client.ja3" not in got  # Arkime has none for SSLv2 either


def test_x509_serial_keeps_the_der_sign_octet() -> None:
    # Values and spellings from Arkime's ssl-selfsign.test and openssl-ssl3.test.
    assert serial_hex(0xB27E45D092B4DDDF) == "00B27E45D092B4DDDF"
    assert serial_hex(0x023A76) == "023A76"
    assert serial_hex(7) == "07"


def test_ja4_of_a_hello_without_extensions_uses_the_empty_hash() -> None:
    # https3-301-get: 23 suites, SNI only; Arkime's value.
    suites = [
        0x39, 0x38, 0x35, 0x16, 0x13, 0x0A, 0x33, 0x32, 0x2F, 0x9A, 0x99, 0x96,
        0x05, 0x04, 0x15, 0x12, 0x09, 0x14, 0x11, 0x08, 0x06, 0x03, 0xFF,
    ]  # fmt: skip
    parts = HelloParts(0x0301, suites, [0])
    assert ja4(parts) == "t10d230100_6a57a6f57151_000000000000"


def _record(msg: bytes) -> bytes:
    return b"\x16\x03\x03" + struct.pack("!H", len(msg)) + msg


def _server_flight(cert_body: bytes) -> bytes:
    hello = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x2f" + b"\x00"
    return _record(b"\x02" + len(hello).to_bytes(3, "big") + hello) + _record(
        b"\x0b" + len(cert_body).to_bytes(3, "big") + cert_body
    )


@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=300), framed=st.booleans())
def test_tls_malformed_certificate_is_counted_and_keeps_the_hello(
    garbage: bytes, framed: bool
) -> None:
    body = garbage
    if framed:  # well-framed list holding one DER blob that is not a certificate
        body = (len(garbage) + 3).to_bytes(3, "big")
        body += len(garbage).to_bytes(3, "big") + garbage
    state = new_app_state("tcp", 50000, 443)
    state.feed(1, _server_flight(body), 1000, 0x18)
    got = state.fields()
    assert got["tls.cipher"] == ["TLS_RSA_WITH_AES_128_CBC_SHA"]
    assert "tls.server.x509.serial_number" not in got
    empty_chain = body == bytes(3)  # legal: a Certificate message with no certs
    assert state.errors == (0 if empty_chain else 1)  # counted; the parser ends


def _first_client_hello(name: str) -> bytes:
    (body,) = [b for b in arkime_sessions(name, "tls") if b.get("tls")]
    return next(p for d, p, _, _ in session_packets(name, body) if p[:2] == b"\x16\x03")


def test_tls_client_hello_inside_a_chunk_after_starttls_is_found() -> None:
    # A text protocol fpc does not parse: the command and the hello in one
    # TCP segment.
    hello = _first_client_hello("smtp-starttls")
    state = new_app_state("tcp", 50000, 7000)
    state.feed(1, b"* ready for TLS\r\n", 5000, 0x18)
    state.feed(0, b"hello there\r\nUPGRADE TLS\r\n" + hello, 1000, 0x18)
    assert state.protocols() == ["tls"]
    want = next(b for b in arkime_sessions("smtp-starttls", "tls"))["tls"]["ja4"]
    assert state.fields()["tls.client.ja4"] == want
    assert state.errors == 0


def test_tls_record_bytes_inside_text_without_a_hello_are_not_tls() -> None:
    state = new_app_state("tcp", 50000, 6667)
    state.feed(1, b"hello\r\n", 5000, 0x18)
    state.feed(0, b"PRIVMSG #c :\x16\x03\x01\x00\x05\x09 no hello\r\n", 1000, 0x18)
    assert state.protocols() == []


@pytest.mark.parametrize("name", ["cloudshark-dtls1", "wireshark-dtls0"])
def test_dtls_ja4_and_certificates_match_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "dtls")
    state = run_session(name, body)
    got = state.fields()
    assert state.protocols() == ["dtls"] and state.errors == 0
    assert got["tls.client.ja4"] == body["tls"]["ja4"]
    assert got["tls.server.x509.serial_number"] == _serials(body["cert"])
    assert "tls.client.ja3" not in got  # none for DTLS, as Arkime


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=700),
    flips=st.lists(st.integers(min_value=0, max_value=699), max_size=4),
)
def test_dtls_damaged_datagrams_are_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    (body,) = arkime_sessions("cloudshark-dtls1", "dtls")
    state = new_app_state("udp", 6000, 7000)
    for direction, payload, _, _ in session_packets("cloudshark-dtls1", body):
        data = bytearray(payload[:cut])
        for i in flips:
            if i < len(data):
                data[i] ^= 0x24
        state.feed(direction, bytes(data), None, 0)
    assert state.errors <= 1
