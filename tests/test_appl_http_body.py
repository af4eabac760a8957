"""HTTP Content-Type media types and body hashes.

Body hashes are compared with Arkime's `http.md5` and `http.sha256` for the
same sessions (Arkime also hashes the body as sent, without undoing gzip);
media types with the Content-Type headers dpkt's HTTP parser reads from the
same packets.
"""

from __future__ import annotations

import hashlib

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets
from test_appl_roundtrip import _body, _feed_stream

from fpc.appl import new_app_state
from fpc.appl.http_body import MAX_HASHED_BYTES

HASH_CASES = [
    "http-100-continue", "http-content-gzip", "http-content-zip",
    "http-empty-useragent", "http-no-length", "http-post-upload", "http-syn-ack",
    "http-tcp-seq-issue", "http-wrapped-header", "socks-http-example",
    "socks5-http-302", "v6-http", "wireshark-retrans",
]  # fmt: skip


@pytest.mark.parametrize("name", HASH_CASES)
def test_http_body_hashes_match_arkime(name: str) -> None:
    for body in arkime_sessions(name, "http"):
        got = run_session(name, body).fields()
        want = body.get("http", {})
        assert set(got.get("fpc.http.body.md5", [])) == set(want.get("md5", []))
        assert set(got.get("fpc.http.body.sha256", [])) == set(want.get("sha256", []))


def _dpkt_content_types(name: str, body: dict) -> set[str]:
    stream = b"".join(p for d, p, _, _ in session_packets(name, body) if d == 1)
    out = set()
    while stream.startswith(b"HTTP/1."):
        try:
            resp = dpkt.http.Response(stream)
        except (dpkt.UnpackError, dpkt.NeedData):
            break
        value = resp.headers.get("content-type")
        if value:
            out.add(value.split(";")[0].strip().lower())
        stream = stream[len(bytes(resp)) :]
    return out


@pytest.mark.parametrize("name", ["http-content-gzip", "http-301-get", "v6-http"])
def test_http_response_media_types_match_dpkt(name: str) -> None:
    for body in arkime_sessions(name, "http"):
        got = run_session(name, body).fields().get("http.response.mime_type", [])
        assert set(got) == _dpkt_content_types(name, body)


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=3000),
    chunked=st.booleans(),
    sizes=st.lists(st.integers(min_value=1, max_value=700), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_http_body_hash_survives_framing_and_segmenting(
    data: bytes, chunked: bool, sizes: list[int], cuts: list[int]
) -> None:
    headers, framed = _body(data, chunked, sizes)
    request = b"POST /u HTTP/1.1\r\nHost: h\r\nContent-Type: Text/Plain; a=b\r\n"
    state = new_app_state("tcp", 50000, 80)
    _feed_stream(state, 0, request + headers + b"\r\n" + framed, cuts)
    got = state.fields()
    assert state.errors == 0
    assert got["http.request.mime_type"] == ["text/plain"]
    assert got["fpc.http.body.md5"] == [hashlib.md5(data).hexdigest()]
    assert got["fpc.http.body.sha256"] == [hashlib.sha256(data).hexdigest()]


def test_http_body_longer_than_the_bound_hashes_its_first_part() -> None:
    data = bytes(range(256)) * (MAX_HASHED_BYTES // 256 + 300)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data)
    state = new_app_state("tcp", 50000, 80)
    state.feed(0, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000, 0x18)
    state.feed(1, head + data, 5000, 0x18)
    got = state.fields()
    want = hashlib.md5(data[:MAX_HASHED_BYTES]).hexdigest()
    assert got["fpc.http.body.md5"] == [want]


def test_http_body_read_until_close_is_hashed_at_the_end() -> None:
    state = new_app_state("tcp", 50000, 80)
    state.feed(0, b"GET / HTTP/1.0\r\n\r\n", 1000, 0x18)
    state.feed(1, b"HTTP/1.0 200 OK\r\n\r\nhello ", 5000, 0x18)
    state.feed(1, b"world", 5025, 0x19)  # FIN
    assert state.fields()["fpc.http.body.md5"] == [
        hashlib.md5(b"hello world").hexdigest()
    ]


@pytest.mark.parametrize("chunked", [False, True])
def test_http_body_ending_past_the_reach_is_declined_not_hashed(chunked: bool) -> None:
    data = b"x" * 5000
    headers, framed = _body(data, chunked, [4000])
    state = new_app_state("tcp", 50000, 80, reach=3000)
    state.feed(0, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000, 0x18)
    head = b"HTTP/1.1 200 OK\r\n" + headers + b"\r\n"
    state.feed(1, head + framed[:1000], 5000, 0x18)
    assert state.declined == 0b10  # server to client: nothing more to learn
    state.feed(1, framed[1000:], 5000 + len(head) + 1000, 0x19)
    state.feed(0, b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n", 1027, 0x18)
    got = state.fields()
    assert "fpc.http.body.md5" not in got
    assert got["url.path"] == ["/", "/next"]  # the client side is still read
    assert state.wants_more


def test_http_body_ending_within_the_reach_is_hashed() -> None:
    data = b"y" * 2000
    state = new_app_state("tcp", 50000, 80, reach=3000)
    state.feed(0, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1000, 0x18)
    state.feed(1, b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + data, 5000, 0x18)
    assert state.declined == 0
    assert state.fields()["fpc.http.body.md5"] == [hashlib.md5(data).hexdigest()]


def test_http_body_read_until_close_past_the_reach_is_declined() -> None:
    state = new_app_state("tcp", 50000, 80, reach=3000)
    state.feed(0, b"GET / HTTP/1.0\r\n\r\n", 1000, 0x18)
    head = b"HTTP/1.0 200 OK\r\n\r\n"
    state.feed(1, head + b"z" * 2000, 5000, 0x18)
    assert state.declined == 0  # the close may still come within the reach
    state.feed(1, b"z" * 1000, 5000 + len(head) + 2000, 0x18)
    assert state.declined == 0b10
    assert "fpc.http.body.md5" not in state.fields()
