"""POP3 and IMAP: users, mailboxes, NTLM logins and STARTTLS/STLS.

Arkime's `email.folder` is the mailbox an IMAP client selects; its `ntlm.*`
holds the NTLM exchange of AUTH NTLM / AUTHENTICATE NTLM.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import new_app_state


def test_imap_login_user_and_mailbox_match_the_capture_and_arkime() -> None:
    (body,) = arkime_sessions("imap", "imap")
    state = run_session("imap", body)
    got = state.fields()
    assert state.protocols() == ["imap"] and state.errors == 0
    assert got["fpc.imap.mailbox"] == body["email"]["folder"]
    assert got["fpc.imap.user"] == ["neulingern"]  # a0001 LOGIN "neulingern" ...


def test_imap_fetched_headers_give_senders_and_subjects_as_arkime() -> None:
    (body,) = arkime_sessions("imap", "imap")
    got, want = run_session("imap", body).fields(), body["email"]
    assert {a.lower() for a in got["email.from.address"]} == set(want["src"])
    # Arkime reads the first line of a folded To field; fpc reads all of it.
    assert set(want["dst"]) < {a.lower() for a in got["email.to.address"]}
    # ... and keeps a trailing space, and a folded subject's first line only.
    assert {s.strip() for s in want["subject"]} - set(got["email.subject"]) == {
        "Re: The problem with NDS userids and bindery logins sometimes wor"
    }
    assert len(got["email.message_id"]) == 13  # 13 messages fetched


def test_imap_literal_split_across_segments_is_read() -> None:
    head = b"From: a@x.example\r\nSubject: split\r\n\r\n"
    fetch = b"* 1 FETCH (BODY[HEADER] {%d}\r\n" % len(head) + head + b")\r\n"
    state = new_app_state("tcp", 40000, 143)
    state.feed(0, b"", 1, 0x02)
    state.feed(1, b"", 1, 0x12)
    seq = 2
    for i in range(0, len(fetch), 5):
        state.feed(1, fetch[i : i + 5], seq, 0)
        seq += 5
    state.feed(0, b"a1 LOGIN u p\r\n", 2, 0)
    assert state.errors == 0
    assert state.fields()["email.subject"] == ["split"]


@pytest.mark.parametrize(("port", "proto"), [(143, "imap"), (110, "pop3")])
def test_ntlm_logins_over_imap_and_pop3_match_arkime(port: int, proto: str) -> None:
    (body,) = [
        b
        for b in arkime_sessions("ntlm_synthetic", proto)
        if b["destination"]["port"] == port
    ]
    state = run_session("ntlm_synthetic", body)
    got, want = state.fields(), body["ntlm"]
    assert state.protocols() == [proto, "ntlm"] and state.errors == 0
    assert got["fpc.ntlm.user"] == body["user"]
    assert got["fpc.ntlm.domain"] == want["domain"]
    assert got["fpc.ntlm.host"] == want["host"]
    assert got["fpc.ntlm.target_name"] == want["targetName"]


@pytest.mark.parametrize(
    ("name", "proto"), [("pop3-tag", "pop3"), ("imap-tag", "imap")]
)
def test_greeting_only_sessions_are_recognized_as_arkime_does(
    name: str, proto: str
) -> None:
    (body,) = arkime_sessions(name, proto)
    assert run_session(name, body).protocols() == [proto]


HELLO = b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"


def test_pop3_user_then_stls_hands_over_at_ok() -> None:
    state = new_app_state("tcp", 50000, 110)
    state.feed(1, b"+OK POP3 ready\r\n", 5000, 0x18)
    state.feed(0, b"USER ann\r\nSTLS\r\n", 1000, 0x18)
    state.feed(1, b"+OK begin TLS\r\n", 5016, 0x18)
    state.feed(0, HELLO, 1016, 0x18)
    assert state.protocols() == ["pop3", "tls"]
    assert state.fields()["fpc.pop3.user"] == ["ann"]


def test_imap_starttls_refused_keeps_reading_commands() -> None:
    state = new_app_state("tcp", 50000, 143)
    state.feed(1, b"* OK IMAP4rev1 ready\r\n", 5000, 0x18)
    state.feed(0, b"a1 STARTTLS\r\n", 1000, 0x18)
    state.feed(1, b"a1 BAD not now\r\n", 5022, 0x18)
    state.feed(0, b"a2 LOGIN bob secret\r\n", 1013, 0x18)
    assert state.protocols() == ["imap"]
    assert state.fields()["fpc.imap.user"] == ["bob"]


@settings(max_examples=150, deadline=None)
@given(port=st.sampled_from([110, 143]), data=st.binary(max_size=600))
def test_mail_random_client_bytes_are_counted_never_raised(
    port: int, data: bytes
) -> None:
    state = new_app_state("tcp", 50000, port)
    greeting = b"+OK POP3 ready\r\n" if port == 110 else b"* OK IMAP4 ready\r\n"
    state.feed(1, greeting, 5000, 0x18)
    state.feed(0, data, 1000, 0x18)
    assert state.errors <= 1
