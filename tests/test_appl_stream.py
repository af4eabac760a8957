"""TCP reassembly for the app-layer parsers (fpc.appl.stream.TcpStream)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fpc.appl.stream import (
    END_FIN,
    END_GAP,
    END_RST,
    MAX_HELD_BYTES,
    SEQ_MOD,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    TcpStream,
    seq_diff,
)


def _segments(data: bytes, cuts: list[int]) -> list[tuple[int, bytes]]:
    """(offset, bytes) pieces of `data` cut at the given offsets."""
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [(a, data[a:b]) for a, b in zip(edges, edges[1:], strict=False)]


def _run(stream: TcpStream, isn: int, pieces: list[tuple[int, bytes]]) -> bytes:
    out = stream.accept(isn, b"", TCP_SYN)
    for off, payload in pieces:
        out += stream.accept((isn + 1 + off) % SEQ_MOD, payload, 0)
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    isn=st.one_of(
        st.integers(min_value=0, max_value=SEQ_MOD - 1),
        st.integers(min_value=SEQ_MOD - 2000, max_value=SEQ_MOD - 1),
    ),
    swaps=st.lists(st.integers(min_value=0, max_value=30), max_size=10),
    dups=st.lists(st.integers(min_value=0, max_value=30), max_size=5),
)
def test_stream_reordered_duplicated_segments_yield_original_bytes(
    data: bytes, cuts: list[int], isn: int, swaps: list[int], dups: list[int]
) -> None:
    pieces = _segments(data, cuts)
    for i in swaps:  # swap neighbours: out-of-order arrival
        if i + 1 < len(pieces):
            pieces[i], pieces[i + 1] = pieces[i + 1], pieces[i]
    for i in dups:  # retransmit a piece later
        if i < len(pieces):
            pieces.append(pieces[i])
    stream = TcpStream()
    assert _run(stream, isn, pieces) == data
    assert stream.ended is None and stream.held_bytes == 0


@given(
    data=st.binary(min_size=2, max_size=2000),
    isn=st.integers(min_value=0, max_value=SEQ_MOD - 1),
    cut=st.integers(min_value=1, max_value=2000),
    start=st.integers(min_value=0, max_value=2000),
)
def test_stream_overlapping_retransmission_first_copy_wins(
    data: bytes, isn: int, cut: int, start: int
) -> None:
    cut = 1 + cut % len(data)  # bytes delivered first
    start %= cut  # a forged copy of some of them arrives later
    stream = TcpStream()
    out = stream.accept(isn, b"", TCP_SYN)
    out += stream.accept((isn + 1) % SEQ_MOD, data[:cut], 0)
    forged = bytes(b ^ 0xFF for b in data[start:cut])
    out += stream.accept((isn + 1 + start) % SEQ_MOD, forged, 0)
    out += stream.accept((isn + 1) % SEQ_MOD, data, 0)
    assert b"".join(out) == data
    assert stream.dropped == len(forged) + cut


def test_stream_gap_delivers_prefix_and_holds_the_rest() -> None:
    stream = TcpStream()
    out = stream.accept(100, b"", TCP_SYN)
    out += stream.accept(101, b"abc", 0)
    out += stream.accept(110, b"late", 0)  # bytes 104..109 never arrive
    assert b"".join(out) == b"abc" and stream.held_bytes == 4


def test_stream_gap_that_never_fills_ends_the_stream_with_bounded_memory() -> None:
    stream = TcpStream()
    stream.accept(0, b"", TCP_SYN)
    seq = 1000
    while stream.ended is None:
        stream.accept(seq, b"x" * 1400, 0)
        assert stream.held_bytes <= MAX_HELD_BYTES + 1400
        seq += 1400
    assert stream.ended == END_GAP and stream.held_bytes == 0
    assert stream.accept(1, b"too late", 0) == []


def test_stream_fin_ends_after_the_last_byte_even_when_fin_arrives_early() -> None:
    stream = TcpStream()
    stream.accept(SEQ_MOD - 3, b"", TCP_SYN)  # data starts at 2**32 - 2
    assert stream.accept(0, b"cd", TCP_FIN) == []  # wrapped, early, carries FIN
    assert stream.ended is None
    assert stream.accept(SEQ_MOD - 2, b"ab", 0) == [b"ab", b"cd"]
    assert stream.ended == END_FIN


def test_stream_rst_ends_it_and_later_data_is_ignored() -> None:
    stream = TcpStream()
    stream.accept(5, b"", TCP_SYN)
    assert stream.accept(6, b"hi", TCP_RST) == [b"hi"]
    assert stream.ended == END_RST
    assert stream.accept(8, b"more", 0) == []


def test_stream_without_syn_starts_at_first_segment() -> None:
    stream = TcpStream()
    assert stream.accept(7777, b"mid", 0) == [b"mid"]
    assert stream.accept(7780, b"dle", 0) == [b"dle"]


def test_stream_segment_absurdly_far_ahead_is_dropped_not_held() -> None:
    stream = TcpStream()
    stream.accept(0, b"", TCP_SYN)
    assert stream.accept(1 << 30, b"junk", 0) == []
    assert stream.held_bytes == 0 and stream.dropped == 4


def test_seq_diff_wraps() -> None:
    assert seq_diff(5, SEQ_MOD - 5) == 10
    assert seq_diff(SEQ_MOD - 5, 5) == -10
