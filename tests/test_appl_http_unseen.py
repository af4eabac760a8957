"""HTTP bodies that are not seen whole, or whose request was not seen.

A body hash must be the hash of the whole body or absent: a stream closed,
reset or cut by a lost segment mid-body gives none, and a response whose
request was not seen (HEAD announces a body it does not carry) is framed by
the bytes that follow its head.
"""

from __future__ import annotations

import hashlib

import pytest

from fpc.appl import new_app_state
from fpc.appl.http import HttpParser
from fpc.appl.sink import FieldSink

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n"


def _parser() -> HttpParser:
    return HttpParser(FieldSink(), "tcp")


def _fields(parser: HttpParser) -> dict:
    return parser.sink.as_dict()


@pytest.mark.parametrize(
    "request_, response, stop",
    [
        # a FIN after 3000 of 5000 bytes
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", RESPONSE + b"a" * 3000, "end"),
        # a FIN inside a chunk
        (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", "end"),
        # a body read until close, cut by a lost segment, not closed
        (b"GET / HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK\r\n\r\nhello", "cut"),
    ],
)  # fmt: skip
def test_body_stopped_before_its_end_is_not_hashed(request_, response, stop) -> None:
    p = _parser()
    p.feed(0, request_)
    p.feed(1, response)
    getattr(p, stop)(1)
    assert "fpc.http.body.md5" not in _fields(p)


def test_body_read_until_close_is_hashed_at_the_close() -> None:
    p = _parser()
    p.feed(0, b"GET / HTTP/1.0\r\n\r\n")
    p.feed(1, b"HTTP/1.0 200 OK\r\n\r\nhello")
    p.end(1)
    assert _fields(p)["fpc.http.body.md5"] == [hashlib.md5(b"hello").hexdigest()]


def test_unseen_head_request_response_has_no_body() -> None:
    # The responses to HEAD requests the parser never saw: each announces
    # 5000 bytes and is followed by the next response.
    p = _parser()
    second = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nContent-Length: 1234\r\n\r\n"
    )
    p.feed(1, RESPONSE + RESPONSE[:5])  # the next status line, cut
    p.feed(1, RESPONSE[5:] + b"\r\n" + second + b"b" * 1234)  # a stray CRLF
    got = _fields(p)
    assert got["http.response.mime_type"] == ["text/css"]  # the third is read
    assert "fpc.http.body.md5" not in got  # after a guessed HEAD: no hash


def test_unseen_request_body_that_looks_like_a_response_gives_no_hash() -> None:
    # A proxy's echo: the body is an HTTP message. The guess takes it for the
    # next response; no hash may come of it.
    p = _parser()
    inner = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    p.feed(1, b"HTTP/1.1 200 OK\r\nContent-Type: message/http\r\n")
    p.feed(1, b"Content-Length: %d\r\n\r\n" % len(inner) + inner)
    p.end(1)
    assert "fpc.http.body.md5" not in _fields(p)


def test_unseen_request_response_with_a_body_is_hashed() -> None:
    # bytes after the head that cannot start a response are its body
    p = _parser()
    p.feed(1, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok2")
    p.feed(1, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    p.end(1)
    got = _fields(p)
    assert got["http.response.status_code"] == [200, 404]
    assert got["fpc.http.body.md5"] == [hashlib.md5(b"ok2").hexdigest()]


def test_unseen_request_chunked_response_without_body_is_not_misread() -> None:
    p = _parser()
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    p.feed(1, head + b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    assert _fields(p)["http.response.status_code"] == [200, 404]
    assert not p.done


def test_requests_past_the_pipeline_bound_pair_no_response_with_a_request() -> None:
    # 65 HEADs, then a GET: the 65th is not queued, so the GET would take its
    # place; from then on every response is framed by a guess, unhashed.
    p = _parser()
    p.feed(0, b"".join(b"HEAD /h%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(65)))
    p.feed(0, b"GET /g HTTP/1.1\r\nHost: h\r\n\r\n")
    body = b"g" * 100
    p.feed(1, RESPONSE * 65 + b"HTTP/1.1 203 OK\r\nContent-Length: 100\r\n\r\n" + body)
    got = _fields(p)
    assert got["http.response.status_code"] == [200, 203]
    assert "fpc.http.body.md5" not in got


def test_session_reset_mid_body_read_until_close_gives_no_hash() -> None:
    state = new_app_state("tcp", 50000, 80)
    state.feed(0, b"GET / HTTP/1.0\r\n\r\n", 1000, 0x18)
    head = b"HTTP/1.0 200 OK\r\n\r\n"
    state.feed(1, head + b"partial", 5000, 0x18)
    state.feed(1, b"", 5000 + len(head) + 7, 0x04)  # RST
    assert "fpc.http.body.md5" not in state.fields()


def test_session_closed_after_body_read_until_close_is_hashed() -> None:
    state = new_app_state("tcp", 50000, 80)
    state.feed(0, b"GET / HTTP/1.0\r\n\r\n", 1000, 0x18)
    head = b"HTTP/1.0 200 OK\r\n\r\n"
    state.feed(1, head + b"whole", 5000, 0x18)
    state.feed(1, b"", 5000 + len(head) + 5, 0x11)  # FIN
    assert state.fields()["fpc.http.body.md5"] == [hashlib.md5(b"whole").hexdigest()]
