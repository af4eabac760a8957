"""SMTP envelope, message headers and STARTTLS against Arkime's sessions.

Arkime's `email.src` holds both the envelope sender and From addresses, and
`email.dst` both the envelope recipients and To/Cc addresses; fpc keeps them
apart (`fpc.smtp.mail_from` vs `email.from.address`), so their unions are
compared. Arkime lowercases what it stores, so values compare lowercased.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets
from test_appl_parsers import tcp_session

from fpc.appl import new_app_state

SMTP_CASES = [
    "ntlm_synthetic", "smtp-data-250", "smtp-decrypted", "smtp-originating",
    "smtp-rcpt-553", "smtp-starttls", "smtp-subject-8859-multi",
    "smtp-subject-8859-q", "smtp-subject-encoded-empty", "smtp-subject-utf8-mixed",
    "smtp-subject-utf8-q", "smtp-zip", "socks5-smtp-503", "smtp-moloch-bof",
]  # fmt: skip
# Arkime's subject differs only in white space the decoders treat differently:
# a leading space kept (smtp-moloch-bof), folding white space between encoded
# words kept (smtp-subject-multi-nospace; RFC 2047 section 6.2 drops it).
SUBJECT_WHITESPACE = {"smtp-moloch-bof"}


def _low(values: list[object]) -> set[str]:
    return {str(v).lower() for v in values}


@pytest.mark.parametrize("name", SMTP_CASES)
def test_smtp_envelope_and_headers_match_arkime(name: str) -> None:
    for body in arkime_sessions(name, "smtp"):
        state = run_session(name, body)
        got, want = state.fields(), body.get("email", {})
        assert state.errors == 0
        assert _low(got["fpc.smtp.helo"]) == _low(want["smtpHello"])
        senders = got.get("fpc.smtp.mail_from", []) + got.get("email.from.address", [])
        assert _low(senders) == _low(want.get("src", []))
        rcpts = got.get("fpc.smtp.rcpt_to", []) + got.get("email.to.address", [])
        rcpts += got.get("email.cc.address", [])
        assert _low(rcpts) == _low(want.get("dst", []))
        pairs = [("id", "email.message_id"), ("useragent", "email.x_mailer")]
        pairs += [("contentType", "email.content_type")]
        if name not in SUBJECT_WHITESPACE:
            pairs.append(("subject", "email.subject"))
        for arkime, ours in pairs:
            assert _low(got.get(ours, [])) == _low(want.get(arkime, [])), arkime


def test_smtp_auth_plain_user_matches_arkime() -> None:
    (body,) = arkime_sessions("smtp-data-250", "smtp")
    assert run_session("smtp-data-250", body).fields()["fpc.smtp.user"] == body["user"]


def test_smtp_auth_login_keeps_the_user_never_the_password() -> None:
    client = (
        b"EHLO c\r\nAUTH LOGIN\r\ndXNlckBleGFtcGxlLm5ldA==\r\ncGFzc3dvcmQ=\r\nQUIT\r\n"
    )
    state = tcp_session(client, b"220 x ESMTP\r\n", dport=25)
    assert state.fields()["fpc.smtp.user"] == ["user@example.net"]


def test_smtp_adjacent_encoded_words_join_without_the_space_between() -> None:
    client = (
        b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"
        b"Subject: re:=?UTF-8?Q?=20caf=C3=A9?=\r\n =?ISO-8859-1?B?IG5vaXI=?= end\r\n"
        b"\r\nbody\r\n.\r\n"
    )
    state = tcp_session(client, b"220 x\r\n354 go\r\n", dport=25)
    assert state.fields()["email.subject"] == ["re: café noir end"]


def test_smtp_starttls_hands_the_session_to_tls() -> None:
    (body,) = arkime_sessions("smtp-starttls", "smtp")
    state = run_session("smtp-starttls", body)
    got = state.fields()
    assert state.protocols() == ["smtp", "tls"]
    assert got["fpc.smtp.starttls"] == [True]
    assert got["tls.client.ja4"] == body["tls"]["ja4"]
    assert got["tls.server.x509.serial_number"]


def test_smtp_pipelined_rcpt_refused_then_354_reads_the_headers() -> None:
    client = (
        b"EHLO c.example\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\n"
        b"RCPT TO:<bad@y.example>\r\nDATA\r\n"
    )
    server = (
        b"220 mx.example ESMTP\r\n250-mx.example\r\n250 PIPELINING\r\n"
        b"250 ok\r\n250 ok\r\n550 no such user\r\n354 go ahead\r\n"
    )
    state = new_app_state("tcp", 40000, 25)
    state.feed(1, server[:21], 5000, 0x18)
    state.feed(0, client, 1000, 0x18)
    state.feed(1, server[21:], 5021, 0x18)
    msg = b"Subject: hi\r\nFrom: A <a@x.example>\r\n\r\nMAIL FROM:<not@cmd>\r\n.\r\n"
    state.feed(0, msg + b"QUIT\r\n", 1000 + len(client), 0x18)
    got = state.fields()
    assert got["email.subject"] == ["hi"]
    assert got["fpc.smtp.mail_from"] == ["a@x.example"]
    assert got["fpc.smtp.rcpt_to"] == ["b@y.example", "bad@y.example"]


def test_smtp_data_refused_keeps_reading_commands() -> None:
    state = new_app_state("tcp", 40000, 25)
    state.feed(1, b"220 mx ESMTP\r\n", 5000, 0x18)
    state.feed(0, b"HELO c\r\nDATA\r\n", 1000, 0x18)
    state.feed(1, b"250 hi\r\n503 need MAIL first\r\n", 5014, 0x18)
    state.feed(0, b"MAIL FROM:<late@x.example>\r\n", 1014, 0x18)
    assert state.fields()["fpc.smtp.mail_from"] == ["late@x.example"]
    assert "email.subject" not in state.fields()


def test_smtp_bdat_chunks_give_the_headers() -> None:
    msg = b"Subject: chunked\r\nTo: t@example.org\r\n\r\nbody"
    client = (
        b"EHLO c\r\nBDAT 10\r\n"
        + msg[:10]
        + b"BDAT %d LAST\r\n" % (len(msg) - 10)
        + msg[10:]
        + b"QUIT\r\n"
    )
    state = tcp_session(client, b"220 mx ESMTP\r\n", dport=25)
    got = state.fields()
    assert got["email.subject"] == ["chunked"]
    assert got["email.to.address"] == ["t@example.org"]
    assert state.errors == 0


@settings(max_examples=150, deadline=None)
@given(
    cut=st.integers(min_value=0, max_value=3000),
    flips=st.lists(st.integers(min_value=0, max_value=2999), max_size=6),
)
def test_smtp_damaged_client_stream_is_counted_never_raised(
    cut: int, flips: list[int]
) -> None:
    (body,) = arkime_sessions("smtp-originating", "smtp")
    packets = session_packets("smtp-originating", body)
    client = bytearray(b"".join(p for d, p, _, _ in packets if d == 0))[:cut]
    for i in flips:
        if i < len(client):
            client[i] ^= 0x0A
    state = tcp_session(bytes(client), b"220 mx ESMTP\r\n354 go\r\n", dport=25)
    assert state.errors <= 1
