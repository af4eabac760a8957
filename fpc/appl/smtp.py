"""SMTP parser: the envelope, the message headers, and STARTTLS.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
HELO/EHLO name, MAIL FROM and RCPT TO addresses (`fpc.smtp.*`), the header
fields of each message sent with DATA (`fpc.appl.mail_headers`, ECS
`email.*`), and `fpc.smtp.starttls` when the server accepted STARTTLS; the
session is then handed to the classifiers again, so TLS takes it over.
Message bodies are skipped, never kept.

Layout (RFC 5321 sections 4.1 and 4.2, RFC 3030, RFC 3207)::

    command   verb [SP argument] CRLF          (HELO, EHLO, MAIL FROM:<a>, ...)
    reply     code(3 digits) ("-" | SP) text CRLF; "-" continues the reply
    DATA      server 354, then header lines, blank line, body, "." CRLF
    BDAT      "BDAT" SP size [SP "LAST"] CRLF, then size bytes of message
"""

from __future__ import annotations

import base64
import binascii
import re

from fpc.appl import ntlm
from fpc.appl.cursor import ParseError
from fpc.appl.mail_headers import add_headers
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

# TODO: message bodies are skipped, so MIME parts, attachment names and their
# hashes (Arkime's email.filename, email.md5) are not reported.
MAX_LINE_BYTES = 4096  # command or reply line (RFC 5321 allows 512)
MAX_HEADER_BYTES = 64 * 1024  # header block of one message
MAX_MESSAGES = 64  # messages whose headers are read per session
_CMD, _WAIT_DATA, _HEADERS, _BODY, _BDAT, _WAIT_TLS = range(6)
_HELLO = re.compile(rb"(?i)(?:HELO|EHLO) +(\S{1,255})")
_PATH = re.compile(rb"(?i)(MAIL FROM|RCPT TO): *<?([^>\s]*)>?")
_BDAT_CMD = re.compile(rb"(?i)BDAT +(\d{1,12})")
_BLANK_LINE = re.compile(rb"\n\r?\n")
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/]{16,}={0,2}")
_AUTH = re.compile(rb"(?i)AUTH +(PLAIN|LOGIN)(?: +([A-Za-z0-9+/]+={0,2}))?$")
_CREDENTIALS = re.compile(rb"[A-Za-z0-9+/]+={0,2}")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client HELO/EHLO, or a 220 greeting that names (E)SMTP."""
    head = data[:5].upper()
    if direction == 0:
        if head in (b"EHLO ", b"HELO "):
            return Verdict.YES
        return (
            Verdict.MORE if len(data) < 5 and b"EHLO ".startswith(head) else Verdict.NO
        )
    if not data.startswith(b"220"[: len(data)]):
        return Verdict.NO
    eol = data.find(b"\n")
    if eol < 0:
        return Verdict.MORE if len(data) < MAX_LINE_BYTES else Verdict.NO
    if port_hint or b"SMTP" in data[:eol].upper():
        return Verdict.YES
    return Verdict.MORE  # an FTP greeting looks the same; the client decides


class SmtpParser(Parser):
    name = "smtp"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._client = _CMD
        self._header = b""
        self._bdat = 0
        self._messages = 0
        self._data_pending = False  # DATA sent, its 354 not seen yet
        self._bdat_last = False  # the current BDAT chunk ends the message
        self._bdat_headers = True  # BDAT bytes are still in the header block
        self._auth = b""  # PLAIN or LOGIN while its credentials are still to come

    def feed(self, direction: int, data: bytes) -> None:
        buf = self._bufs[direction] + data
        if direction == 0:
            buf = self._client_bytes(buf)
        else:
            buf = self._server_bytes(buf)
        if self.handoff is None:
            self._bufs[direction] = buf

    def end(self, direction: int) -> None:
        self._bufs[direction] = b""
        if direction == 0:
            self.done = True  # the server's replies alone say nothing more

    # client ---------------------------------------------------------------

    def _client_bytes(self, buf: bytes) -> bytes:
        pos = 0
        while self._client != _WAIT_TLS and pos < len(buf):
            if self._client == _WAIT_DATA:
                # A client sends the message only after the 354; here it is
                # not in the capture (or arrived later).
                self._data_pending = False
                self._client = _HEADERS
            if self._client == _BDAT:
                pos = self._on_bdat(buf, pos)
                continue
            eol = buf.find(b"\n", pos)
            if eol < 0:
                return self._partial_line(buf[pos:])
            line, pos = buf[pos:eol].rstrip(b"\r"), eol + 1
            self._on_client_line(line)
        if self._client == _WAIT_TLS and buf[pos : pos + 1] == b"\x16":
            # The client's TLS record came with the server's 220 not seen (out
            # of order, or before the capture started): TLS takes over anyway.
            self._start_tls(buf[pos:], self._bufs[1])
            return b""
        return buf[pos:]

    def _start_tls(self, client_rest: bytes, server_rest: bytes) -> None:
        self.sink.add("fpc.smtp.starttls", True)
        self.handoff = (client_rest, server_rest)
        self.done = True

    def _partial_line(self, rest: bytes) -> bytes:
        if len(rest) <= MAX_LINE_BYTES:
            return rest
        if self._client == _BODY:
            return b""  # a long body line: only the final "." line matters
        raise ParseError(f"smtp line longer than {MAX_LINE_BYTES} bytes")

    def _on_client_line(self, line: bytes) -> None:
        if self._client == _HEADERS:
            self._on_header_line(line)
        elif self._client == _BODY:
            if line == b".":
                self._client = _CMD
        else:
            self._on_command(line)

    def _on_command(self, line: bytes) -> None:
        verb = line[:8].upper()
        if self._auth and _CREDENTIALS.fullmatch(line):
            self._on_credentials(line)
        elif auth := _AUTH.match(line):
            self._auth = auth.group(1).upper()
            if auth.group(2):
                self._on_credentials(auth.group(2))
        elif hello := _HELLO.match(line):
            self.sink.add("fpc.smtp.helo", _text(hello.group(1)).lower())
        elif path := _PATH.match(line):
            field = (
                "fpc.smtp.mail_from"
                if path.group(1)[0] in b"Mm"
                else "fpc.smtp.rcpt_to"
            )
            if path.group(2):
                self.sink.add(field, _text(path.group(2)))
        elif verb.rstrip() == b"DATA":
            self._client = _WAIT_DATA
            self._data_pending = True
        elif verb.rstrip() == b"STARTTLS":
            self._client = _WAIT_TLS
        elif _BASE64_LINE.fullmatch(line) or line[:10].upper() == b"AUTH NTLM ":
            ntlm.scan_base64(self.sink, line.rsplit(b" ", 1)[-1])  # AUTH exchange
        elif bdat := _BDAT_CMD.match(line):
            self._bdat = int(bdat.group(1))
            self._bdat_last = line.upper().rstrip().endswith(b" LAST")
            self._client = _BDAT if self._bdat else _CMD

    def _on_credentials(self, token: bytes) -> None:
        """The user of AUTH PLAIN (authzid NUL user NUL password, RFC 4616)
        or the first AUTH LOGIN answer; the password is never kept."""
        kind, self._auth = self._auth, b""
        try:
            raw = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return
        user = (
            raw.split(b"\x00")[1]
            if kind == b"PLAIN" and raw.count(b"\x00") == 2
            else raw
        )
        if user and kind in (b"PLAIN", b"LOGIN") and _text(user).isprintable():
            self.sink.add("fpc.smtp.user", _text(user))

    def _on_bdat(self, buf: bytes, pos: int) -> int:
        """Reads BDAT message bytes; the headers end at the first blank line."""
        step = min(self._bdat, len(buf) - pos)
        chunk, self._bdat = buf[pos : pos + step], self._bdat - step
        if self._bdat_headers and len(self._header) < MAX_HEADER_BYTES:
            self._header += chunk[: MAX_HEADER_BYTES - len(self._header)]
            match = _BLANK_LINE.search(self._header)
            if match is not None:
                self._end_headers(self._header[: match.start() + 1])
        if not self._bdat:
            self._client = _CMD
            if self._bdat_last:  # the message is over: the next one has headers
                if self._bdat_headers:
                    self._end_headers(self._header)
                self._bdat_headers = True
        return pos + step

    def _end_headers(self, block: bytes) -> None:
        if self._messages < MAX_MESSAGES:
            add_headers(self.sink, block)
        self._messages += 1
        self._header = b""
        self._bdat_headers = False

    def _on_header_line(self, line: bytes) -> None:
        if line in (b"", b"."):
            self._end_headers(self._header)
            self._bdat_headers = True
            self._client = _BODY if line == b"" else _CMD
            return
        if len(self._header) + len(line) > MAX_HEADER_BYTES:
            raise ParseError(f"smtp message header over {MAX_HEADER_BYTES} bytes")
        self._header += line + b"\n"

    # server ---------------------------------------------------------------

    def _server_bytes(self, buf: bytes) -> bytes:
        pos = 0
        while self.handoff is None:
            eol = buf.find(b"\n", pos)
            if eol < 0:
                break
            line, pos = buf[pos:eol].rstrip(b"\r"), eol + 1
            if line[:4] == b"334 ":  # an AUTH challenge, NTLM's in base64
                ntlm.scan_base64(self.sink, line[4:])
            if line[3:4] != b"-":  # the last line of a reply carries the verdict
                self._on_reply(line[:3], buf[pos:])
        rest = buf[pos:]
        if len(rest) > MAX_LINE_BYTES:
            raise ParseError(f"smtp reply line longer than {MAX_LINE_BYTES} bytes")
        return rest

    def _on_reply(self, code: bytes, rest: bytes) -> None:
        if self._client == _WAIT_TLS:
            if code == b"220":
                self._start_tls(self._bufs[0], rest)
                return
            self._client = _CMD
        elif code == b"354" and self._data_pending:
            self._data_pending = False
            self._client = _HEADERS
        elif code[:1] in (b"4", b"5") and self._client == _WAIT_DATA:
            # Refused, or a pipelined MAIL/RCPT refused; a 354 may still come.
            self._client = _CMD
        else:
            return  # replies to other commands (pipelined 250s included)
        self._bufs[0] = self._client_bytes(self._bufs[0])


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


register(
    ParserSpec(
        name="smtp",
        transports=frozenset({"tcp"}),
        ports=frozenset({25, 587, 2525}),
        classify=classify,
        create=SmtpParser,
    )
)
