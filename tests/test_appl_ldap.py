"""LDAP binds, searches and StartTLS against Arkime's sessions.

Arkime names an empty bind DN '<ROOT>' (fpc keeps no empty DN) and calls an
empty-password simple bind 'none' (fpc: 'anonymous'), a sicily NTLM bind
'ntlmsspNegotiate'/'ntlmsspAuth' (fpc: 'ntlm').
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets
from test_appl_other import run, sessions

from fpc.appl import new_app_state

AUTH_NAMES = {"none": "anonymous", "sasl": "sasl", "ntlmsspNegotiate": "ntlm",
              "ntlmsspAuth": "ntlm", "simple": "simple"}  # fmt: skip


def _ldap_bodies() -> list[tuple[str, dict]]:
    names = ["ldap-and-search", "ntlm_synthetic"]
    return [(n, b) for n in names for b in arkime_sessions(n, "ldap")]


@pytest.mark.parametrize(("name", "body"), _ldap_bodies())
def test_ldap_bind_fields_match_arkime(name: str, body: dict) -> None:
    state = run_session(name, body)
    got, want = state.fields(), body["ldap"]
    assert state.errors == 0
    assert set(got["fpc.ldap.auth_type"]) == {AUTH_NAMES[a] for a in want["authtype"]}
    dns = {d for d in want["bindname"] if d != "<ROOT>"}
    assert set(got.get("fpc.ldap.bind_dn", [])) == dns


def test_ldap_starttls_hands_the_session_to_tls() -> None:
    (body,) = arkime_sessions("ldap-ssl", "tls")
    state = run_session("ldap-ssl", body)
    assert state.protocols() == ["ldap", "tls"]
    assert state.fields()["tls.client.ja4"] == body["tls"]["ja4"]
    assert state.errors == 0


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=200), flips=st.lists(st.integers(0, 199)))
def test_ldap_damaged_bind_is_counted_never_raised(cut: int, flips: list[int]) -> None:
    (body,) = arkime_sessions("ldap-and-search", "ldap")
    first = next(p for d, p, _, _ in session_packets("ldap-and-search", body) if p)
    data = bytearray(first[:cut])
    for i in flips:
        if i < len(data):
            data[i] ^= 0x81
    state = new_app_state("tcp", 40000, 389)
    state.feed(0, bytes(data), 1000, 0x18)
    assert state.errors <= 1


def test_ldap_sasl_security_layer_after_bind_ends_the_parser_quietly() -> None:
    # zeek-pcapng-many-idbs-mixed-linktypes: a GSS-SPNEGO bind, then sealed
    # messages behind a 4-byte length.
    ((key, packets),) = [
        item
        for item in sessions("zeek-pcapng-many-idbs-mixed-linktypes.pcapng").items()
        if 389 in (item[0][1][1], item[0][2][1])
    ]
    state = run(key, packets)
    assert state.protocols() == ["ldap"] and state.errors == 0
    assert state.fields()["fpc.ldap.sasl_mechanism"] == ["GSS-SPNEGO"]
