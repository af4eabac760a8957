"""App-layer state of one session: classify its first bytes, run the parsers.

In: every packet of a session from the session table (`feed`), in capture
order, with direction 0 = client->server and 1 = server->client. TCP payload
goes through one `TcpStream` per direction first; UDP datagrams go straight
to the parsers. Out: `protocols()` and `fields()` for the SPI record. Runs on
the processing thread; one instance per session, so nothing is shared.

Memory: a million sessions may be active, so a state allocates nothing until
it needs it (sink, prelude, parser lists) and a UDP session that no
classifier recognized keeps nothing but the count of datagrams tried
(`parked`, `tried`): the session table may drop the state and make a new one
with that count for the next datagram.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fpc.appl import ntlm
from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, pending_pair, specs_for
from fpc.appl.sink import FieldSink
from fpc.appl.stream import END_FIN, TcpStream, seq_diff

logger = logging.getLogger(__name__)

# Verdict members read into names: an enum member costs a slow class
# attribute lookup (EnumType has __getattr__), asked of every classifier.
_YES, _MORE = Verdict.YES, Verdict.MORE

MAX_PRELUDE_BYTES = 4096  # bytes kept per session until a protocol matches
MAX_UDP_CLASSIFY = 8  # datagrams tried before giving up on a UDP session
MAX_HANDOFFS = 2  # protocol switches followed per session (CONNECT, STARTTLS)
LATE_CHUNKS = 32  # chunks of an unrecognized TCP session tried by late classifiers


class AppState:
    """Classifiers, parsers and TCP reassembly of one session.

    `tried` is the number of UDP datagrams a parked state of the same session
    had classified already (see the module docstring).
    """

    __slots__ = (
        "transport", "errors", "_ports", "_sink", "_pending", "_prelude",
        "_prelude_bytes", "_samples", "_tried", "_parsers", "_protocols",
        "_streams", "_classifying", "_handoffs", "_broken", "_late_left",
        "_reach", "declined", "declined_told",
    )  # fmt: skip

    def __init__(
        self, transport: str, sport: int, dport: int, tried: int = 0, reach: int = 0
    ) -> None:
        self.transport = transport
        self.errors = 0
        self._ports = (sport, dport)
        self._sink: FieldSink | None = None  # made when a parser starts
        # Specs not ruled out yet, per direction; the registry's shared pair
        # until a TCP classifier says NO.
        self._pending = pending_pair(transport)
        self._prelude: list[tuple[int, bytes]] | None = None  # replayed on a match
        self._prelude_bytes = 0
        self._samples: tuple[bytearray, bytearray] | None = None  # TCP, per direction
        self._tried = tried
        self._parsers: tuple[Parser, ...] = ()
        self._protocols: tuple[str, ...] = ()
        self._streams = (TcpStream(), TcpStream()) if transport == "tcp" else None
        self._classifying = bool(self._pending[0])
        self._handoffs = 0
        self._broken = False  # an internal error stopped all parsing
        self._late_left = 0  # chunks still to try with the `late` classifiers
        self._reach = reach  # see Parser.reach
        # Bit d: no parser wants more of TCP direction d (set by the parsers);
        # the session table tells the C table, and keeps in declined_told what
        # it told.
        self.declined = 0
        self.declined_told = 0

    @property
    def tried(self) -> int:
        return self._tried

    @property
    def parked(self) -> bool:
        """A UDP session still classifying that holds nothing worth keeping but
        `tried`: no parser, no datagram to replay, no error."""
        return (
            self._streams is None
            and self._classifying
            and not self._prelude
            and not self._parsers
            and not self._handoffs
            and not self.errors
        )

    @property
    def wants_more(self) -> bool:
        # Asked before and after every packet: plain tests, no generators.
        if self._broken:
            return False
        streams = self._streams
        if streams is not None and streams[0].ended and streams[1].ended:
            return False
        if self._classifying or self._late_left:
            return True
        for parser in self._parsers:
            if not parser.done:
                return True
        return False

    def takes_joined(self, direction: int, seq: int) -> bool:
        """True if TCP segments of `direction` from `seq` on, each continuing
        the one before, may be fed as one chunk with the same outcome: parsers
        run (classifiers judge chunk by chunk), and the stream is in order,
        holds nothing and has all bytes before `seq`."""
        if self._classifying or self._late_left or self._streams is None:
            return False
        stream = self._streams[direction]
        expect = stream.next_seq
        return (
            not stream.ended
            and not stream.held
            and expect is not None
            and seq_diff(seq, expect) <= 0
        )

    def protocols(self) -> list[str]:
        names = list(self._protocols)
        for parser in self._parsers:
            names += [n for n in parser.extra_protocols if n not in names]
        if self._sink is not None and self._sink.has("fpc.ntlm.type"):
            names.append(ntlm.PROTOCOL)
        return names

    def fields(self) -> dict[str, list[object]]:
        return self._sink.as_dict() if self._sink is not None else {}

    def feed(
        self, direction: int, payload: bytes, seq: int | None, tcp_flags: int
    ) -> None:
        """One packet's L4 payload; never raises (a bug is counted in errors)."""
        if direction not in (0, 1) or not self.wants_more:
            return
        try:
            self._feed(direction, payload, seq, tcp_flags)
        except Exception:  # a bug here must not stop the pipeline
            logger.debug("app state failed transport=%s", self.transport, exc_info=True)
            self.errors += 1
            self._broken = True

    def _feed(
        self, direction: int, payload: bytes, seq: int | None, tcp_flags: int
    ) -> None:
        if self._streams is None:
            if payload:
                self._on_data(direction, bytes(payload))
            return
        stream = self._streams[direction]
        if stream.ended:
            return
        for chunk in stream.accept(seq, bytes(payload), tcp_flags):
            self._on_data(direction, chunk)
        if stream.ended:
            self._on_end(direction)

    def _on_data(self, direction: int, data: bytes) -> None:
        if self._classifying:
            self._classify(direction, data)
            return
        if self._late_left:
            self._try_late(direction, data)
            return
        declined = 3
        for parser in self._parsers:
            if not parser.done:
                self._run(parser, parser.feed, direction, data)
            if parser.handoff is not None:
                self._restart(parser)
                return
            declined &= 3 if parser.done else parser.declined
        if self._streams is not None:
            self.declined = declined

    def _on_end(self, direction: int) -> None:
        pair = list(self._pending)
        pair[direction] = ()
        self._pending = (pair[0], pair[1])
        if self._classifying and not any(self._pending):
            self._give_up()
        closed = self._streams is None or self._streams[direction].ended == END_FIN
        for parser in self._parsers:
            if not parser.done:
                self._run(parser, parser.end if closed else parser.cut, direction)

    def _run(self, parser: Parser, method: Callable[..., None], *args: object) -> None:
        try:
            method(*args)
        except ParseError as exc:
            self._fail(parser, exc)
        except Exception as exc:  # a parser bug must not stop the pipeline
            logger.debug("app parser failed parser=%s", parser.name, exc_info=True)
            self._fail(parser, exc)

    def _fail(self, parser: Parser, exc: Exception) -> None:
        self.errors += 1
        parser.done = True
        logger.debug("app parse error parser=%s reason=%s", parser.name, exc)

    def _classify(self, direction: int, data: bytes) -> None:
        if self._streams is None:
            self._tried += 1
            sample = data
        else:
            if self._samples is None:
                self._samples = (bytearray(), bytearray())
            self._samples[direction].extend(data)
            sample = bytes(self._samples[direction][:MAX_PRELUDE_BYTES])
        matched, waiting = self._match(direction, sample)
        # TCP keeps every byte of the stream; a UDP datagram only when a
        # classifier said MORE (see _match).
        if matched or waiting or self._streams is not None:
            if self._prelude is None:
                self._prelude = []
            self._prelude.append((direction, data))
            self._prelude_bytes += len(data)
        if matched:
            self._start(matched)
        elif (
            self._streams is not None
            and not waiting
            and self._start_late(direction, data, True)
        ):
            # e.g. a ClientHello sent in one segment with STARTTLS. Not while a
            # classifier still reads its own header: a chunk cut inside it is
            # no message start (a DNS header cut after its id reads as SSLv2).
            return
        elif (
            self._prelude_bytes > MAX_PRELUDE_BYTES
            or self._tried >= MAX_UDP_CLASSIFY
            or not any(self._pending)
        ):
            self._give_up()

    def _match(self, direction: int, sample: bytes) -> tuple[list[ParserSpec], bool]:
        """Specs that say YES, and whether one said MORE. A UDP datagram is
        worth replaying to a parser that starts later only in that case: one
        every classifier refused would only fail the parser it is replayed to
        (a junk datagram on port 53 before a DNS query lost the query), and
        keeping it would cost every idle session on a flooded port."""
        pending = self._pending[direction]
        matched, waiting, left = [], False, []
        tcp = self._streams is not None
        for spec in pending:
            verdict = self._verdict(spec, direction, sample)
            if verdict == _YES:
                matched.append(spec)
            elif verdict == _MORE:
                waiting = True
            elif tcp:
                continue  # ruled out for this TCP direction
            left.append(spec)
        if len(left) < len(pending):
            pair = list(self._pending)
            pair[direction] = tuple(left)
            self._pending = (pair[0], pair[1])
        return matched, waiting

    def _verdict(self, spec: ParserSpec, direction: int, sample: bytes) -> Verdict:
        ports = spec.ports  # a hint: either port of the session is the spec's
        hinted = self._ports[0] in ports or self._ports[1] in ports
        try:
            return spec.classify(self.transport, direction, sample, hinted)
        except Exception:  # a classifier bug counts as "not this protocol"
            logger.debug("app classifier failed parser=%s", spec.name, exc_info=True)
            return Verdict.NO

    def _start(self, specs: list[ParserSpec]) -> None:
        if self._sink is None:
            self._sink = FieldSink()
        for spec in specs:
            parser = spec.create(self._sink, self.transport)
            if self._reach and self._streams is not None:
                parser.reach = self._reach
            self._parsers += (parser,)
            if spec.name not in self._protocols:
                self._protocols += (spec.name,)
        prelude = self._prelude or ()
        self._stop_classifying()
        for direction, chunk in prelude:
            self._on_data(direction, chunk)
        for direction in (0, 1):
            if self._streams and self._streams[direction].ended:
                self._on_end(direction)

    def _give_up(self) -> None:
        """No protocol matched the first bytes; later TCP chunks may still."""
        self._stop_classifying()
        if self._streams is not None and all(p.done for p in self._parsers):
            self._late_left = LATE_CHUNKS

    def _try_late(self, direction: int, data: bytes) -> None:
        self._late_left -= 1
        if self._start_late(direction, data, at_start=True):
            self._late_left = 0

    def _start_late(self, direction: int, data: bytes, at_start: bool) -> bool:
        """Starts a `late` protocol found in `data` (at its start if `at_start`,
        else anywhere `find` sees one); what came before is dropped."""
        for spec in specs_for(self.transport):
            if not spec.late:
                continue
            start = -1
            if at_start and self._verdict(spec, direction, data) == Verdict.YES:
                start = 0
            elif spec.find is not None:
                start = spec.find(data)
            if start >= 0:
                self._prelude = [(direction, data[start:])]
                self._start([spec])
                return True
        return False

    def _stop_classifying(self) -> None:
        self._classifying = False
        self._prelude = None
        self._prelude_bytes = 0
        self._samples = None

    def _restart(self, parser: Parser) -> None:
        """Classifies the session again from where `parser` handed it off."""
        leftover = parser.handoff or (b"", b"")
        parser.handoff = None
        parser.done = True
        self._handoffs += 1
        if self._handoffs > MAX_HANDOFFS:
            return
        specs = specs_for(self.transport)
        ended = [bool(self._streams and self._streams[d].ended) for d in (0, 1)]
        self._pending = (() if ended[0] else specs, () if ended[1] else specs)
        self._classifying = True
        self._tried = 0
        for direction in (0, 1):
            if leftover[direction]:
                self._on_data(direction, leftover[direction])
