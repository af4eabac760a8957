"""HTTP/2 parser (cleartext): request and response headers of every stream.

In: the first bytes of a TCP session (prior knowledge) or of the bytes after
an HTTP/1.1 `101 Switching Protocols` (h2c upgrade), from `fpc.appl.state`;
HTTP/2 over TLS is seen as TLS (ALPN `h2` names it). Out: the same fields as
HTTP/1.x (`http.request.method`, `url.domain`, `url.path`, `url.query`,
`http.response.status_code`, `user_agent.original`, media types) and
`http.version` "2", and the hashes of each stream's body
(`fpc.appl.http_body`). Header blocks are decoded with the `hpack` package,
one decoder per direction since each keeps its peer's dynamic table; DATA
payload is hashed as it passes and, like other frames, never buffered.

Connection (RFC 9113 sections 3.4, 4.1, 6.2, 6.10)::

    client: "PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"  frame*      server: frame*
    frame   = length(24) type(8) flags(8) R(1) stream-id(31)  payload
    HEADERS = [pad-length(8)] [E(1) dependency(31) weight(8)] block [padding]
              flags: END_HEADERS 0x4, PADDED 0x8, PRIORITY 0x20
    PUSH_PROMISE = [pad-length(8)] R(1) promised-stream-id(31) block [padding]
              (a request the server pushes; flags END_HEADERS, PADDED)
    CONTINUATION = block (until END_HEADERS)
    DATA    = [pad-length(8)] data [padding]   flags: END_STREAM 0x1, PADDED 0x8
"""

from __future__ import annotations

import hpack
from hpack.exceptions import HPACKError

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.http import add_domain
from fpc.appl.http_body import BodyHash
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HDR_LEN = 9
TYPE_DATA, TYPE_HEADERS, TYPE_PUSH_PROMISE, TYPE_CONTINUATION = 0x0, 0x1, 0x5, 0x9
_HEADER_TYPES = (TYPE_HEADERS, TYPE_PUSH_PROMISE, TYPE_CONTINUATION)
FLAG_END_STREAM, FLAG_END_HEADERS, FLAG_PADDED, FLAG_PRIORITY = 0x1, 0x4, 0x8, 0x20
MAX_BLOCK_BYTES = 64 * 1024  # longest header block (CONTINUATIONs included)
MAX_TABLE_BYTES = 64 * 1024  # dynamic table size a peer may ask the decoder for
MAX_HEADER_BLOCKS = 128  # header blocks decoded per session; then the parser stops
MAX_OPEN_BODIES = 16  # bodies hashed at once per direction; others are skipped


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    if data.startswith(PREFACE):
        return Verdict.YES
    return Verdict.MORE if PREFACE.startswith(data) else Verdict.NO


class _Direction:
    """Frame reader and HPACK decoder of one direction."""

    __slots__ = ("buf", "skip", "lead", "hash_left", "body", "ends", "bodies",
                 "block", "pushed", "decoder", "started")  # fmt: skip

    def __init__(self, started: bool) -> None:
        self.buf = b""
        self.skip = 0  # payload bytes of a frame passed over, still to come
        self.lead = 0  # of those, bytes before the data (a DATA pad length)
        self.hash_left = 0  # of those, data bytes to hash
        self.body: BodyHash | None = None  # the hash the current DATA feeds
        self.ends = False  # the current DATA frame ends its stream
        self.bodies: dict[int, BodyHash] = {}  # by stream id, bodies being read
        self.block = bytearray()  # header block being collected
        self.pushed = False  # the block is a PUSH_PROMISE's: a request's headers
        # made at the direction's first header block: an empty decoder is
        # about 1 KB, held by every session that only sent its preface
        self.decoder: hpack.Decoder | None = None
        self.started = started  # the client's preface has been seen


class Http2Parser(Parser):
    name = "http2"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self.extra_protocols = ["http"]  # cleartext HTTP/2 is HTTP
        self._sides = (_Direction(started=False), _Direction(started=True))
        self._blocks = 0

    def feed(self, direction: int, data: bytes) -> None:
        side = self._sides[direction]
        if side.skip:
            data = data[self._pass_over(side, data, 0) :]
        buf = side.buf + data if side.buf else data
        if not side.started:
            if len(buf) < len(PREFACE):
                side.buf = buf
                return
            if not buf.startswith(PREFACE):
                raise ParseError("http2 client did not start with the preface")
            buf, side.started = buf[len(PREFACE) :], True
        side.buf = self._frames(direction, side, buf)

    def _frames(self, direction: int, side: _Direction, buf: bytes) -> bytes:
        """Reads the whole frames in `buf`; returns what is left of it."""
        pos = 0
        while len(buf) - pos >= FRAME_HDR_LEN and not self.done:
            c = Cursor(buf, pos)
            length, ftype, flags = c.u24("http2 length"), c.u8(), c.u8()
            stream = c.u32("http2 stream id") & 0x7FFFFFFF
            if ftype not in _HEADER_TYPES:
                if ftype == TYPE_DATA and flags & FLAG_PADDED and not c.remaining:
                    break  # the pad length is needed first
                self._start_payload(side, ftype, flags, stream, length, buf, c.pos)
                pos = self._pass_over(side, buf, c.pos)
                if side.skip:
                    return b""
                continue
            if length > MAX_BLOCK_BYTES:
                raise ParseError(f"http2 header frame of {length} bytes is too long")
            if c.remaining < length:
                break
            self._on_header_frame(direction, side, ftype, flags, c.sub(length))
            pos = c.pos
        return buf[pos:]

    def _on_header_frame(
        self, direction: int, side: _Direction, ftype: int, flags: int, c: Cursor
    ) -> None:
        pad = 0
        if ftype != TYPE_CONTINUATION:
            side.pushed = ftype == TYPE_PUSH_PROMISE
            if flags & FLAG_PADDED:
                pad = c.u8("http2 pad length")
            if side.pushed:
                c.skip(4, "http2 promised stream id")
            elif flags & FLAG_PRIORITY:
                c.skip(5, "http2 priority")
        if pad > c.remaining:
            raise ParseError(f"http2 padding {pad} exceeds the frame")
        side.block += c.take(c.remaining - pad, "http2 header block")
        if len(side.block) > MAX_BLOCK_BYTES:
            raise ParseError("http2 header block longer than 64 KiB")
        if flags & FLAG_END_HEADERS:
            block, side.block = bytes(side.block), bytearray()
            self._on_block(0 if side.pushed else direction, side, block)

    def _on_block(self, role: int, side: _Direction, block: bytes) -> None:
        """Decodes a block; role 0: a request's headers, 1: a response's."""
        if side.decoder is None:
            side.decoder = hpack.Decoder()
            side.decoder.max_allowed_table_size = MAX_TABLE_BYTES
        try:
            headers = side.decoder.decode(block, raw=True)
        except HPACKError as exc:
            raise ParseError(f"http2 header block does not decode: {exc}") from exc
        self.sink.add("http.version", "2")
        for name, value in headers:
            _add_header(self.sink, role, bytes(name), bytes(value))
        self._blocks += 1
        self.done = self._blocks >= MAX_HEADER_BLOCKS

    def _start_payload(
        self, side: _Direction, ftype: int, flags: int, stream: int, length: int,
        buf: bytes, at: int,
    ) -> None:  # fmt: skip
        """Sets up passing over one frame's payload, hashing a DATA frame's."""
        side.skip, side.lead, side.hash_left, side.body = length, 0, 0, None
        if ftype != TYPE_DATA:
            return
        if flags & FLAG_PADDED:
            side.lead = 1
            side.hash_left = length - 1 - buf[at]
            if side.hash_left < 0:
                raise ParseError(f"http2 DATA padding exceeds its {length}-byte frame")
        else:
            side.hash_left = length
        side.body = side.bodies.get(stream)
        if side.body is None and len(side.bodies) < MAX_OPEN_BODIES:
            side.body = side.bodies[stream] = BodyHash()
            side.body.start()
        side.ends = bool(flags & FLAG_END_STREAM)
        if side.ends:
            side.bodies.pop(stream, None)

    def _pass_over(self, side: _Direction, data: bytes, pos: int) -> int:
        """Consumes the current frame's payload from `data[pos:]`; returns the
        offset after what it used."""
        used = min(side.skip, len(data) - pos)
        chunk = data[pos : pos + used] if side.body is not None else b""
        if side.lead:
            cut = min(side.lead, used)
            chunk, side.lead = chunk[cut:], side.lead - cut
        if side.body is not None and side.hash_left > 0:
            part = chunk[: side.hash_left]
            side.body.update(part)
            side.hash_left -= len(part)
        side.skip -= used
        if not side.skip and side.ends and side.body is not None:
            side.body.finish(self.sink)
            side.body = None
        return pos + used

    def end(self, direction: int) -> None:
        side = self._sides[direction]
        side.buf = b""
        for body in side.bodies.values():  # streams cut off: what was seen
            body.finish(self.sink)
        side.bodies.clear()


def _add_header(sink: FieldSink, role: int, name: bytes, value: bytes) -> None:
    text = value.decode("latin-1")
    if role == 0:
        if name == b":method":
            sink.add("http.request.method", text)
        elif name == b":authority":
            add_domain(sink, value)
        elif name == b":path":
            path, _, query = text.partition("?")
            sink.add("url.path", path)
            if query:
                sink.add("url.query", query)
        elif name == b"user-agent":
            sink.add("user_agent.original", text)
        elif name == b"content-type":
            _add_media_type(sink, "http.request.mime_type", text)
    elif name == b":status" and len(value) == 3 and value.isdigit():
        # bytes.isdigit() is ASCII only; latin-1 text would take '²' too
        sink.add("http.response.status_code", int(text))
    elif name == b"content-type":
        _add_media_type(sink, "http.response.mime_type", text)


def _add_media_type(sink: FieldSink, field: str, value: str) -> None:
    media = value.split(";", 1)[0].strip().lower()
    if media:
        sink.add(field, media)


register(
    ParserSpec(
        name="http2",
        transports=frozenset({"tcp"}),
        ports=frozenset(),
        classify=classify,
        create=Http2Parser,
    )
)
