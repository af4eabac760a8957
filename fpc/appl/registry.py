"""The table of app-layer protocols: one entry per parser module.

Each parser module calls `register()` once at import with a classifier and a
parser class; `fpc.appl.state.AppState` asks the classifiers about the first
bytes of each direction and runs the parsers of the protocols that match.
Adding a protocol means adding one module and importing it in `__init__`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from fpc.appl.sink import FieldSink


class Verdict(enum.IntEnum):
    """A classifier's answer about the first bytes of one direction."""

    NO = 0  # not this protocol
    MORE = 1  # too few bytes to tell; ask again with more
    YES = 2  # this protocol


class Parser:
    """Base of every app-layer parser; one instance per session.

    `feed` gets in-order bytes of one direction (TCP) or one datagram (UDP);
    it raises `fpc.appl.cursor.ParseError` on malformed data. `done` turns
    True when the parser needs nothing more from this session; bit d of
    `declined` is set when it needs nothing more of TCP direction d.
    """

    name = ""
    # Bytes of each TCP direction the session table offers the parsers (0: no
    # limit): a message that ends past them can never be read whole.
    reach = 0

    def __init__(self, sink: FieldSink, transport: str) -> None:
        self.sink = sink
        self.transport = transport
        self.done = False
        self.declined = 0
        # Set when the rest of the session is another protocol (after CONNECT,
        # an Upgrade, SOCKS, STARTTLS): the bytes of each direction already
        # received past the switch. The session is then classified again.
        self.handoff: tuple[bytes, bytes] | None = None
        # Protocols the session carries besides this one (ALPN h2 in TLS).
        self.extra_protocols: list[str] = []

    def feed(self, direction: int, data: bytes) -> None:
        raise NotImplementedError

    def end(self, direction: int) -> None:
        """No more bytes will come in `direction`: the peer closed it (FIN)."""

    def cut(self, direction: int) -> None:
        """No more bytes will come in `direction`, without a close: a RST, or
        a gap that never filled. What was being read is incomplete."""
        self.end(direction)


# classify(transport, direction, first_bytes, port_hint) -> Verdict
Classifier = Callable[[str, int, bytes, bool], Verdict]


@dataclass(frozen=True)
class ParserSpec:
    name: str
    transports: frozenset[str]
    ports: frozenset[int]  # a hint only: classifiers decide on content first
    classify: Classifier
    create: Callable[[FieldSink, str], Parser]
    # Also tried on the first bytes of later TCP chunks of an unrecognized
    # session: the protocol often starts mid-session (TLS after STARTTLS).
    late: bool = False
    # For `late` protocols: offset where the protocol starts inside a chunk
    # (-1: nowhere), for a reply and the first message sent in one segment.
    find: Callable[[bytes], int] | None = None
    # Names the parser may list besides its own (`Parser.extra_protocols`).
    also_names: frozenset[str] = frozenset()


_SPECS: list[ParserSpec] = []
_BY_TRANSPORT: dict[str, tuple[ParserSpec, ...]] = {}
_PAIRS: dict[str, tuple[tuple[ParserSpec, ...], tuple[ParserSpec, ...]]] = {}


def register(spec: ParserSpec) -> None:
    if any(s.name == spec.name for s in _SPECS):
        raise ValueError(f"app-layer parser {spec.name!r} is registered twice")
    _SPECS.append(spec)
    _BY_TRANSPORT.clear()
    _PAIRS.clear()


def specs_for(transport: str) -> tuple[ParserSpec, ...]:
    specs = _BY_TRANSPORT.get(transport)
    if specs is None:
        specs = tuple(s for s in _SPECS if transport in s.transports)
        _BY_TRANSPORT[transport] = specs
    return specs


def pending_pair(
    transport: str,
) -> tuple[tuple[ParserSpec, ...], tuple[ParserSpec, ...]]:
    """`specs_for(transport)` for each direction, one shared object, so a new
    session's list of protocols still possible costs nothing."""
    pair = _PAIRS.get(transport)
    if pair is None:
        specs = specs_for(transport)
        pair = _PAIRS[transport] = (specs, specs)
    return pair


def registered_names() -> list[str]:
    return [s.name for s in _SPECS]


def registered_specs() -> tuple[ParserSpec, ...]:
    return tuple(_SPECS)
