"""HTTP/2 recognizer: the client connection preface of cleartext HTTP/2.

In: the first bytes of a TCP session (prior knowledge) or of the bytes after
an HTTP/1.1 `101 Switching Protocols` (h2c upgrade), from `fpc.appl.state`.
Out: the protocol name "http2" only; HTTP/2 over TLS is seen as TLS.

Preface (RFC 9113 section 3.4)::

    "PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"  then a SETTINGS frame
"""

from __future__ import annotations

from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    if data.startswith(PREFACE):
        return Verdict.YES
    return Verdict.MORE if PREFACE.startswith(data) else Verdict.NO


class Http2Parser(Parser):
    # TODO: frames are not decoded (HPACK needs per-session dynamic tables), so
    # HTTP/2 requests give no method, path or status fields.
    name = "http2"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self.done = True

    def feed(self, direction: int, data: bytes) -> None:
        return


register(
    ParserSpec(
        name="http2",
        transports=frozenset({"tcp"}),
        ports=frozenset(),
        classify=classify,
        create=Http2Parser,
    )
)
