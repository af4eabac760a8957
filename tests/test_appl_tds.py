"""TDS logins (SQL Server LOGIN7, Sybase TDS 5) against Arkime's `user`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state


@pytest.mark.parametrize("name", ["tds7", "tds5"])
def test_tds_login_user_matches_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "tds")
    state = run_session(name, body)
    got = state.fields()
    assert state.protocols() == ["tds"] and state.errors == 0
    # Arkime lowercases the user it stores.
    assert [u.lower() for u in got["fpc.tds.user"]] == body["user"]


def test_tds7_login_names_from_the_capture() -> None:
    (body,) = arkime_sessions("tds7", "tds")
    got = run_session("tds7", body).fields()
    assert got["fpc.tds.client_host"] == ["LIV-VXP-007"]
    assert got["fpc.tds.application"] == ["Microsoft Data Access Components"]


def test_tds_integrated_login_ntlm_matches_arkime() -> None:
    (body,) = [
        b
        for b in arkime_sessions("ntlm_synthetic", "tds")
        if b["destination"]["port"] == 1433
    ]
    got = run_session("ntlm_synthetic", body).fields()
    assert got["fpc.ntlm.user"] == body["user"]
    assert got["fpc.ntlm.target_name"] == body["ntlm"]["targetName"]


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 300), flips=st.lists(st.integers(0, 299), max_size=4))
def test_tds_damaged_login_is_counted_never_raised(cut: int, flips: list[int]) -> None:
    (body,) = arkime_sessions("tds7", "tds")
    state = new_app_state("tcp", 1040, 1433)
    seq = 1000
    for direction, payload, _, _ in session_packets("tds7", body)[:6]:
        if direction:
            continue
        data = bytearray(payload[:cut])
        for i in flips:
            if i < len(data):
                data[i] ^= 0x77
        state.feed(0, bytes(data), seq, 0x18)
        seq += len(data)
    assert state.errors <= 1
