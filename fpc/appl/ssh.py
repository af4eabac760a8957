"""SSH parser: the version banner of each side.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
client's and server's identification strings in `fpc.ssh.client` and
`fpc.ssh.server`. Done once both banners are read; the rest is encrypted.

Banner layout (RFC 4253 section 4.2); a server may send other lines first::

    "SSH-" protoversion "-" softwareversion [SP comments] CR LF   (max 255 bytes)
"""

from __future__ import annotations

from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_BANNER_BYTES = 255  # RFC 4253 section 4.2, CR LF included
MAX_PRE_BANNER_BYTES = 1024  # other lines a server may send before its banner
_FIELDS = ("fpc.ssh.client", "fpc.ssh.server")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    if data.startswith(b"SSH-"):
        return Verdict.YES
    return Verdict.MORE if b"SSH-".startswith(data) else Verdict.NO


class SshParser(Parser):
    name = "ssh"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._seen = [False, False]

    def feed(self, direction: int, data: bytes) -> None:
        if self._seen[direction]:
            return
        buf = self._bufs[direction] + data
        while not self._seen[direction]:
            eol = buf.find(b"\n")
            if eol < 0:
                break
            line, buf = buf[:eol].rstrip(b"\r"), buf[eol + 1 :]
            if line.startswith(b"SSH-"):
                self._on_banner(direction, line)
        if len(buf) > MAX_PRE_BANNER_BYTES and not self._seen[direction]:
            raise ParseError(
                f"ssh: no banner line in the first {MAX_PRE_BANNER_BYTES} bytes "
                f"(direction {direction})"
            )
        self._bufs[direction] = b"" if self._seen[direction] else buf

    def end(self, direction: int) -> None:
        self._seen[direction] = True
        self.done = all(self._seen)

    def _on_banner(self, direction: int, line: bytes) -> None:
        if len(line) + 2 > MAX_BANNER_BYTES:
            raise ParseError(f"ssh banner of {len(line)} bytes exceeds 255 with CRLF")
        text = line.decode("ascii", "backslashreplace")
        self.sink.add(_FIELDS[direction], text)
        self._seen[direction] = True
        self.done = all(self._seen)


register(
    ParserSpec(
        name="ssh",
        transports=frozenset({"tcp"}),
        ports=frozenset({22, 2222}),
        classify=classify,
        create=SshParser,
    )
)
