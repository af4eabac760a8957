"""IRC nicknames and channels against Arkime's sessions; STARTTLS to TLS."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session
from test_appl_other import run, sessions

from fpc.appl import new_app_state


@pytest.mark.parametrize("name", ["irc", "irc-cap-req"])
def test_irc_nick_and_channel_match_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "irc")
    state = run_session(name, body)
    got = state.fields()
    assert state.protocols() == ["irc"] and state.errors == 0
    assert got["fpc.irc.nick"] == body["irc"]["nick"]
    assert got["fpc.irc.channel"] == body["irc"]["channel"]


def test_irc_starttls_capture_gives_the_client_and_server_hellos() -> None:
    # The capture starts at STARTTLS; the certificate's name is on the wire.
    ((key, packets),) = sessions("zeek-sll-irc-starttls.pcap").items()
    got = run(key, packets).fields()
    assert got["tls.client.ja4"][0].startswith("t12i")
    assert got["tls.server.x509.subject.common_name"] == ["irc.joulunet.org"]


def test_irc_starttls_after_nick_hands_over_at_670() -> None:
    state = new_app_state("tcp", 50000, 6667)
    state.feed(0, b"NICK n1\r\nSTARTTLS\r\n", 1000, 0x18)
    state.feed(1, b":srv 670 n1 :STARTTLS successful\r\n", 5000, 0x18)
    record = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"
    state.feed(0, record, 1019, 0x18)
    assert state.protocols() == ["irc", "tls"]
    assert state.fields()["fpc.irc.nick"] == ["n1"]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600))
def test_irc_random_bytes_after_nick_are_counted_never_raised(data: bytes) -> None:
    state = new_app_state("tcp", 50000, 6667)
    state.feed(0, b"NICK n1\r\n" + data, 1000, 0x18)
    assert state.errors <= 1


@pytest.mark.parametrize(
    "first",
    [
        b"USER anonymous\r\nPASS guest@\r\nCWD /pub\r\n",
        b"USER ann\r\nPASS x\r\nSTAT\r\n",
    ],
)
def test_ftp_and_pop3_logins_are_not_irc(first: bytes) -> None:
    state = new_app_state("tcp", 50000, 2121)
    state.feed(0, first, 1000, 0x18)
    assert "irc" not in state.protocols()


def test_irc_user_line_with_realname_is_irc() -> None:
    state = new_app_state("tcp", 50000, 7000)
    state.feed(0, b"USER u 0 * :Real Name\r\nNICK n2\r\n", 1000, 0x18)
    assert state.protocols() == ["irc"]
    assert state.fields()["fpc.irc.nick"] == ["n2"]
