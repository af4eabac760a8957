"""Kerberos over UDP and TCP against Arkime's sessions, and damaged messages.

Arkime leaves out encryption types it has no name for (Microsoft's private
negative numbers); fpc keeps them as numbers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state


@pytest.mark.parametrize("name", ["krb5-tcp", "krb5-udp"])
def test_krb5_fields_match_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "krb5")
    state = run_session(name, body)
    got, want = state.fields(), body["krb5"]
    assert state.errors == 0
    assert got["fpc.krb5.realm"] == want["realm"]
    assert got["fpc.krb5.cname"] == want["cname"]
    assert got["fpc.krb5.sname"] == want["sname"]
    named = [e for e in got["fpc.krb5.etype"] if not e.startswith("-")]
    assert set(named) == set(want["etype"])
    assert "AS-REQ" in got["fpc.krb5.msg_type"]


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(["krb5-tcp", "krb5-udp"]),
    cut=st.integers(min_value=0, max_value=400),
    flips=st.lists(st.integers(min_value=0, max_value=399), max_size=4),
)
def test_krb5_damaged_request_is_counted_never_raised(
    name: str, cut: int, flips: list[int]
) -> None:
    (body,) = arkime_sessions(name, "krb5")
    first = next(p for d, p, _, _ in session_packets(name, body) if p)
    data = bytearray(first[:cut])
    for i in flips:
        if i < len(data):
            data[i] ^= 0x42
    transport = "tcp" if name == "krb5-tcp" else "udp"
    state = new_app_state(transport, 40000, 88)
    state.feed(0, bytes(data), 1000 if transport == "tcp" else None, 0x18)
    assert state.errors <= 1
