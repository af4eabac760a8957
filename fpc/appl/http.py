"""HTTP/1.x parser: every request and response head of a session.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: method,
Host, URI, status code, User-Agent and Content-Type of each message, in the
SPI fields `http.request.method`, `url.domain`, `url.path` and `url.query`,
`http.response.status_code`, `user_agent.original` and
`http.request/response.mime_type`. Bodies are framed by Content-Length or
chunked framing, so pipelined and keep-alive messages are all seen; they are
hashed (`fpc.appl.http_body`), never kept.

Message layout (RFC 9112)::

    start-line CRLF  *( field-name ":" OWS field-value OWS CRLF )  CRLF  [body]
    start-line = method SP request-target SP HTTP-version      (request)
               | HTTP-version SP status-code SP [reason-phrase] (response)
    chunked body = *( hex-size [; ext] CRLF data CRLF ) "0" CRLF *trailer CRLF
"""

from __future__ import annotations

import base64
import binascii
import re

from fpc.appl import ntlm
from fpc.appl.cursor import ParseError
from fpc.appl.http_body import BodyHash
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_HEAD_BYTES = 16 * 1024  # a request or response head longer than this is an error
MAX_CHUNK_LINE_BYTES = 1024
MAX_PENDING_REQUESTS = 64  # pipelined requests waiting for their response
_STATUS_START = b"HTTP/1."  # the start of every HTTP/1.x response
WEBSOCKET = "websocket"  # listed after a 101 switching to it (RFC 6455)

_METHOD = re.compile(rb"[A-Z][A-Z_-]{1,19} ")
_METHOD_START = re.compile(rb"[A-Z][A-Z_-]{0,19}")  # a method, space not seen yet
# The target may hold stray spaces (seen from broken clients); the version ends it.
_REQUEST_LINE = re.compile(rb"([A-Za-z_-]{1,20}) (\S.{0,8191}?) HTTP/1\.(\d)$")
_STATUS_LINE = re.compile(rb"HTTP/1\.(\d) (\d{3})(?: .*)?$")

_FOLD = re.compile(rb"\r?\n[ \t]+")  # obsolete line folding (RFC 9112 5.2)
_Headers = dict[bytes, list[bytes]]

# What a direction is reading.
_HEAD, _BODY, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER, _UNTIL_CLOSE = range(7)
_OPAQUE = 7  # after CONNECT or an Upgrade: not HTTP any more


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A request line (token SP) or a status line ("HTTP/1.") starts HTTP."""
    if data.startswith(b"HTTP/1."):
        return Verdict.YES
    if b"HTTP/1.".startswith(data):
        return Verdict.MORE
    if not _METHOD.match(data):
        return Verdict.MORE if _METHOD_START.fullmatch(data) else Verdict.NO
    line_end = data.find(b"\n")
    if line_end < 0:
        return Verdict.MORE if len(data) < MAX_HEAD_BYTES else Verdict.NO
    line = data[:line_end].rstrip(b"\r")
    return Verdict.YES if _REQUEST_LINE.match(line) else Verdict.NO


class _Side:
    """Framing state of one direction."""

    __slots__ = (
        "buf",
        "state",
        "remaining",
        "scanned",
        "body",
        "fed",
        "guess",
        "doubt",
    )

    def __init__(self) -> None:
        self.body = BodyHash()
        self.buf = b""
        self.state = _HEAD
        self.remaining = 0
        self.scanned = 0  # bytes of an incomplete head searched for its end
        self.fed = 0  # bytes of this direction fed so far
        # The response's request was not seen (see _on_response): whether it
        # has a body is a guess until its next bytes are read.
        self.guess = False
        # Set once a guess took the bytes after a head for the next response:
        # they may have been a body that looks like one (an echoed message),
        # so no later body on this side is hashed.
        self.doubt = False


class HttpParser(Parser):
    name = "http"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._sides = (_Side(), _Side())
        # a list, not a deque: a deque's first block alone is 600 bytes, and
        # at most 64 requests wait here
        self._methods: list[bytes] = []
        # Set once a request could not be queued: from then on no response
        # can be paired with its request.
        self._lost_request = False
        self._switched = False

    def _hand_off(self, direction: int, rest: bytes) -> None:
        """Passes the bytes after the switch (and any the client sent early) on."""
        other = self._sides[1 - direction].buf
        self.handoff = (rest, other) if direction == 0 else (other, rest)
        for side in self._sides:
            side.state = _OPAQUE
            side.buf = b""
        self.done = True

    def feed(self, direction: int, data: bytes) -> None:
        side = self._sides[direction]
        if side.state == _OPAQUE:
            return
        side.fed += len(data)
        buf = side.buf + data if side.buf else data
        pos = self._consume(side, buf, 0)
        if self._switched:
            self._hand_off(direction, buf[pos:])
            return
        if self.reach and self._past_reach(side):
            self._out_of_reach(direction)
            return
        rest = len(buf) - pos
        if rest > MAX_HEAD_BYTES:
            raise ParseError(
                f"http head longer than {MAX_HEAD_BYTES} bytes "
                f"(direction {direction}); not HTTP/1.x or a broken peer"
            )
        side.buf = buf[pos:] if rest else b""

    def _past_reach(self, side: _Side) -> bool:
        """Whether the body being read ends past `reach`: a body read until
        close is, once the session table has offered all it will."""
        if side.guess:
            return False
        if side.state in (_BODY, _CHUNK_DATA):
            return side.fed + side.remaining > self.reach
        return side.state == _UNTIL_CLOSE and side.fed >= self.reach

    def _out_of_reach(self, direction: int) -> None:
        """The body being read ends past the bytes the session table offers
        (`reach`): it cannot be hashed, nor anything after it read."""
        self.declined |= 1 << direction
        self.cut(direction)

    def end(self, direction: int) -> None:
        side = self._sides[direction]
        if side.state == _UNTIL_CLOSE and not side.guess:
            side.body.finish(self.sink)  # the close ends this body
        else:
            side.body.drop()  # a body cut short by the close
        self._close(side)

    def cut(self, direction: int) -> None:
        self._sides[direction].body.drop()
        self._close(self._sides[direction])

    def _close(self, side: _Side) -> None:
        side.state = _OPAQUE
        side.buf = b""
        self.done = self.done or all(s.state == _OPAQUE for s in self._sides)

    def _consume(self, side: _Side, buf: bytes, pos: int) -> int:
        """Reads as far as `buf` allows; returns the first byte not used."""
        size = len(buf)
        while pos < size and side.state != _OPAQUE and not self._switched:
            if side.guess:
                at = pos
                while at < size and buf[at] in b"\r\n":
                    at += 1  # stray CRLF before the next message, as _read_head
                start = buf[at : at + len(_STATUS_START)]
                if len(start) < len(_STATUS_START) and _STATUS_START.startswith(start):
                    break  # too few bytes to tell
                side.guess = False
                if start == _STATUS_START:  # no body: a HEAD's response
                    side.body.drop()
                    side.state = _HEAD
                    side.doubt = True
            state = side.state
            if state == _HEAD:
                new = self._read_head(side, buf, pos)
            elif state in (_BODY, _CHUNK_DATA):
                new = pos + min(side.remaining, size - pos)
                side.body.update(buf[pos:new])
                side.remaining -= new - pos
                if side.remaining == 0:
                    side.state = _HEAD if state == _BODY else _CHUNK_CRLF
                if side.state == _HEAD:
                    side.body.finish(self.sink)
            elif state == _UNTIL_CLOSE:
                new = size
                side.body.update(buf[pos:])
                if side.body.full:  # nothing more to learn from this session
                    side.body.finish(self.sink)
                    self.done = True
            else:
                new = self._read_chunk_line(side, buf, pos)
            if new == pos:
                break
            pos = new
        return pos

    def _read_head(self, side: _Side, buf: bytes, pos: int) -> int:
        while pos < len(buf) and buf[pos] in b"\r\n":
            pos += 1  # stray CRLF between messages (RFC 9112 section 2.2)
        found = _find_head_end(buf, pos + side.scanned)
        if found is None:
            side.scanned = max(0, len(buf) - pos - 2)  # resume there next time
            return pos
        end, after = found
        side.scanned = 0
        head = buf[pos:end]
        eol = head.find(b"\n")
        start = (head if eol < 0 else head[:eol]).rstrip(b"\r")
        headers = _headers(b"" if eol < 0 else head[eol:])
        if start.startswith(b"HTTP/"):
            self._on_response(side, start, headers)
        else:
            self._on_request(side, start, headers)
        return after

    def _read_chunk_line(self, side: _Side, buf: bytes, pos: int) -> int:
        eol = buf.find(b"\n", pos, pos + MAX_CHUNK_LINE_BYTES)
        if eol < 0:
            if len(buf) - pos >= MAX_CHUNK_LINE_BYTES:
                raise ParseError("http chunk-size line too long; broken chunked body")
            return pos
        line = buf[pos:eol].strip()
        if side.state == _CHUNK_CRLF:
            side.state = _CHUNK_SIZE
        elif side.state == _TRAILER:
            if not line:  # the blank line ending the trailer ends the message
                side.state = _HEAD
                side.body.finish(self.sink)
        else:
            self._on_chunk_size(side, line)
        return eol + 1

    def _on_chunk_size(self, side: _Side, line: bytes) -> None:
        digits = line.split(b";", 1)[0].strip()
        if not digits or len(digits) > 16 or not re.fullmatch(rb"[0-9A-Fa-f]+", digits):
            raise ParseError(f"http chunk size {line[:32]!r} is not hexadecimal")
        side.remaining = int(digits, 16)
        side.state = _CHUNK_DATA if side.remaining else _TRAILER

    def _on_request(self, side: _Side, start: bytes, headers: _Headers) -> None:
        match = _REQUEST_LINE.match(start)
        if match is None:
            raise ParseError(f"http request line {start[:64]!r} is malformed")
        method, target = match.group(1), match.group(2)
        self.sink.add("http.version", "1." + match.group(3).decode())
        self.sink.add("http.request.method", method.decode("latin-1"))
        _add_target(self.sink, method, target)
        for host in headers.get(b"host", ()):
            add_domain(self.sink, host)
        for agent in headers.get(b"user-agent", ()):
            self.sink.add("user_agent.original", agent.decode("latin-1"))
        _add_media_type(self.sink, "http.request.mime_type", headers)
        for value in headers.get(b"authorization", ()):
            _add_authorization(self.sink, value)
        if len(self._methods) >= MAX_PENDING_REQUESTS:
            self._lost_request = True
            self._methods.clear()
        if not self._lost_request:
            self._methods.append(method)
        _frame_body(side, headers, has_body=True)

    def _on_response(self, side: _Side, start: bytes, headers: _Headers) -> None:
        match = _STATUS_LINE.match(start)
        if match is None:
            raise ParseError(f"http status line {start[:64]!r} is malformed")
        status = int(match.group(2))
        self.sink.add("http.version", "1." + match.group(1).decode())
        self.sink.add("http.response.status_code", status)
        if 100 <= status < 200 and status != 101:
            return  # interim response: the final one follows, body-less
        # Unseen when the client's bytes were not all offered, or more than
        # MAX_PENDING_REQUESTS were pipelined: a HEAD's response announces a
        # body it does not carry, so the bytes after the head decide where
        # the next response starts.
        seen = bool(self._methods) and not self._lost_request
        method = self._methods.pop(0) if seen else b""
        if status == 101 or (method == b"CONNECT" and 200 <= status < 300):
            self._switched = True  # a tunnel or another protocol follows
            if status == 101 and _upgrades_to_websocket(headers):
                self.extra_protocols.append(WEBSOCKET)
            return
        _add_media_type(self.sink, "http.response.mime_type", headers)
        for value in headers.get(b"www-authenticate", ()):
            scheme, _, token = value.partition(b" ")
            if scheme.lower() in (b"ntlm", b"negotiate") and token:
                ntlm.scan_base64(self.sink, token)
        no_body = method == b"HEAD" or status in (204, 304)
        _frame_body(side, headers, has_body=not no_body, until_close=True)
        if side.doubt:
            side.body.drop()
        if not seen:
            side.guess = side.state != _HEAD


def _upgrades_to_websocket(headers: _Headers) -> bool:
    """RFC 6455 section 4.2.2: the 101 response names websocket in Upgrade
    (a list of protocol["/" version] tokens, RFC 9110 section 7.8)."""
    tokens = (
        token.strip().split(b"/")[0].lower()
        for value in headers.get(b"upgrade", ())
        for token in value.split(b",")
    )
    return b"websocket" in tokens


def _find_head_end(buf: bytes, start: int) -> tuple[int, int] | None:
    """(end of the head, first byte after its blank line), or None if absent."""
    crlf = buf.find(b"\n\r\n", start)
    lf = buf.find(b"\n\n", start)
    if crlf < 0 and lf < 0:
        return None
    if lf < 0 or 0 <= crlf < lf:
        eol, after = crlf, crlf + 3
    else:
        eol, after = lf, lf + 2
    return (eol - 1 if buf[eol - 1] == 13 else eol), after


def _headers(block: bytes) -> _Headers:
    """Header fields by lowercase name; folded lines are joined first."""
    if b"\n " in block or b"\n\t" in block:
        block = _FOLD.sub(b" ", block)
    headers: _Headers = {}
    for line in block.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep:  # a line without a colon is ignored, as RFC 9112 allows
            headers.setdefault(name.strip().lower(), []).append(value.strip())
    return headers


def _frame_body(
    side: _Side,
    headers: _Headers,
    has_body: bool,
    until_close: bool = False,
) -> None:
    side.state = _HEAD
    if not has_body:
        return
    side.body.start()
    codings = b",".join(headers.get(b"transfer-encoding", ())).lower()
    if codings.rstrip().endswith(b"chunked"):
        side.state = _CHUNK_SIZE
        return
    lengths = {v for v in headers.get(b"content-length", ())}
    if len(lengths) > 1 or any(not v.isdigit() or len(v) > 18 for v in lengths):
        raise ParseError(f"http Content-Length {sorted(lengths)!r} is invalid")
    if lengths:
        side.remaining = int(lengths.pop())
        side.state = _BODY if side.remaining else _HEAD
    elif until_close:
        side.state = _UNTIL_CLOSE


def _add_authorization(sink: FieldSink, value: bytes) -> None:
    """The scheme; the Basic user name; the NTLM fields of NTLM/Negotiate."""
    scheme, _, token = value.strip().partition(b" ")
    scheme = scheme.lower()
    if not scheme:
        return
    sink.add("fpc.http.auth_type", scheme.decode("latin-1"))
    if scheme in (b"ntlm", b"negotiate"):
        ntlm.scan_base64(sink, token)
    elif scheme == b"basic":
        try:
            user = base64.b64decode(token.strip(), validate=True).split(b":", 1)[0]
        except (binascii.Error, ValueError):
            return
        if user:
            sink.add("fpc.http.user", user.decode("utf-8", "backslashreplace"))


def _add_media_type(sink: FieldSink, field: str, headers: _Headers) -> None:
    """The media type of Content-Type, lowercase, without its parameters."""
    for value in headers.get(b"content-type", ()):
        media = value.split(b";", 1)[0].strip().lower()
        if media:
            sink.add(field, media.decode("latin-1"))


def _add_target(sink: FieldSink, method: bytes, target: bytes) -> None:
    if method == b"CONNECT":  # authority-form: the tunnel's host:port, no path
        sink.add("fpc.http.connect_target", target.decode("latin-1").lower())
        return
    lower = target[:8].lower()
    if lower.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        authority, slash, path = rest.partition(b"/")
        add_domain(sink, authority)
        target = slash + path if slash else b"/"
    path, _, query = target.partition(b"?")
    sink.add("url.path", path.decode("latin-1"))
    if query:
        sink.add("url.query", query.decode("latin-1"))


def add_domain(sink: FieldSink, host: bytes) -> None:
    """Adds a Host value without its port (and without IPv6 brackets)."""
    host = host.rsplit(b"@", 1)[-1]
    if host.startswith(b"["):
        host = host[1:].split(b"]", 1)[0]
    elif host.count(b":") == 1:
        host = host.split(b":", 1)[0]
    if host:
        sink.add("url.domain", host.decode("latin-1").lower())


register(
    ParserSpec(
        name="http",
        transports=frozenset({"tcp"}),
        ports=frozenset({80, 8000, 8080, 8008, 3128}),
        classify=classify,
        create=HttpParser,
        also_names=frozenset({WEBSOCKET}),
    )
)
