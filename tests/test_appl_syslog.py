"""Syslog against Arkime's sessions of the ospf capture (BSD-format messages
from a router to UDP 514), and the RFC 5424 header."""

from __future__ import annotations

from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import new_app_state


def test_syslog_sessions_are_named_as_arkime_names_them() -> None:
    bodies = arkime_sessions("ospf", "syslog")
    assert len(bodies) == 2
    got = {}
    for body in bodies:
        state = run_session("ospf", body)
        assert state.protocols() == ["syslog"] and state.errors == 0
        got[body["source"]["port"]] = state.fields()
    # <85>: authpriv.notice and <36>: auth.warning, both from host rtr01.
    assert got[46503]["fpc.syslog.facility"] == ["authpriv"]
    assert got[46503]["fpc.syslog.severity"] == ["notice"]
    assert got[42521]["fpc.syslog.facility"] == ["auth"]
    assert got[42521]["fpc.syslog.severity"] == ["warning"]
    assert {h for f in got.values() for h in f["fpc.syslog.hostname"]} == {"rtr01"}


def test_syslog_rfc5424_header_off_port_gives_host() -> None:
    state = new_app_state("udp", 40000, 5140)
    state.feed(
        0, b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 -", None, 0
    )
    fields = state.fields()
    assert state.protocols() == ["syslog"]
    assert fields["fpc.syslog.facility"] == ["local4"]
    assert fields["fpc.syslog.severity"] == ["notice"]
    assert fields["fpc.syslog.hostname"] == ["mymachine.example.com"]


def test_syslog_pri_alone_off_port_or_out_of_range_is_not_syslog() -> None:
    for port, data in ((5140, b"<13>hello"), (514, b"<192>Oct 21 06:55:08 h x")):
        state = new_app_state("udp", 40000, port)
        state.feed(0, data, None, 0)
        assert "syslog" not in state.protocols()
