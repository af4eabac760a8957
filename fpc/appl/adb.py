"""Android Debug Bridge parser: the device transport (TCP 5555) and the host
server's smart socket protocol (TCP 5037).

In: the in-order bytes of each direction from `fpc.appl.state`. Out:
`fpc.adb.command` of every transport message; from CNXN the protocol
`version`, `max_payload`, the `system_type` (host, device, ...) and `serial`
of each side; AUTH types; and the `service` each OPEN (or smart socket
request) asks for (shell, sync, forward, host, ...). After both sides send
STLS, TLS follows: the session is classified again. Message data past
MAX_DATA bytes is an error; after MAX_MESSAGES messages the parser stops.

Layout (AOSP adb protocol.txt and SERVICES.TXT; numbers little-endian)::

    message   command(4B ASCII) arg0(32) arg1(32) data_length(32) data_crc32(32)
              magic(32) = command ^ 0xFFFFFFFF, then data_length bytes
    CNXN      arg0 version, arg1 max data, data "systemtype:serial:banner"
    AUTH      arg0 type: 1 token, 2 signature, 3 RSA public key
    OPEN      data "service:arguments" NUL
    STLS      arg0 version: TLS follows once both sides sent it
    smart     length(4 hex digits) request, e.g. "000chost:version"
    socket    (client to the host server on 5037)
"""

from __future__ import annotations

import re

from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

HDR_LEN = 24
COMMANDS = frozenset({b"CNXN", b"AUTH", b"OPEN", b"OKAY", b"CLSE", b"WRTE",
                      b"SYNC", b"STLS"})  # fmt: skip
AUTH_TYPES = {1: "token", 2: "signature", 3: "rsapublickey"}
SERVER_PORT = 5037  # the host server's smart socket port
MAX_DATA = 1024 * 1024  # adb's own limit is 256 KiB (1 MiB in newer releases)
MAX_MESSAGES = 512
MAX_REQUEST = 1024  # bytes of a smart socket request
_SMART = re.compile(rb"[0-9a-fA-F]{4}(?:host|shell|sync|transport)")


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A transport message header (its magic checks it), or on 5037 a smart
    socket request."""
    if direction != 0:
        return Verdict.NO
    if data[:4] in COMMANDS:
        if len(data) < HDR_LEN:
            return Verdict.MORE
        return Verdict.YES if _is_header(data) else Verdict.NO
    if port_hint and _SMART.match(data):
        return Verdict.YES
    partial = 0 < len(data) < 4 and any(c.startswith(data) for c in COMMANDS)
    return Verdict.MORE if partial else Verdict.NO


def _is_header(head: bytes) -> bool:
    command = int.from_bytes(head[:4], "little")
    magic = int.from_bytes(head[20:24], "little")
    return head[:4] in COMMANDS and magic == command ^ 0xFFFFFFFF


def _message_len(head: bytes) -> int:
    if not _is_header(head):
        raise ParseError(f"adb message header {head[:4]!r} with a wrong magic")
    size = int.from_bytes(head[12:16], "little")
    if size > MAX_DATA:
        raise ParseError(f"adb message data of {size} bytes (max {MAX_DATA})")
    return HDR_LEN + size


class AdbParser(Parser):
    name = "adb"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._messages = 0
        self._smart: bool | None = None  # smart socket (5037) or transport
        self._stls = [False, False]

    def feed(self, direction: int, data: bytes) -> None:
        buf = self._bufs[direction]
        buf.add(data)
        if self._smart is None and direction == 0:
            self._smart = _SMART.match(buf.peek(HDR_LEN)) is not None
        if self._smart:
            if direction == 0:
                self._on_requests(buf)
            else:
                buf.clear()  # the server's OKAY/FAIL replies carry nothing kept
            return
        # After its STLS a side sends TLS, which waits in its buffer for the other
        # side's STLS (then both buffers go to TLS).
        while (
            not self.done
            and not self._stls[direction]
            and (msg := buf.next_frame(HDR_LEN, _message_len))
        ):
            self._messages += 1
            self.done = self._messages >= MAX_MESSAGES
            self._on_message(direction, msg)

    def _on_requests(self, buf: ByteBuffer) -> None:
        while not self.done and len(buf) >= 4:
            head = buf.peek(4)
            try:
                size = int(head, 16)
            except ValueError:
                raise ParseError(f"adb smart socket length {head!r}") from None
            if size > MAX_REQUEST:
                raise ParseError(f"adb smart socket request of {size} bytes")
            if len(buf) < 4 + size:
                return
            request = buf.take(4 + size)[4:]
            self._add_service(request)
            # After a request for a device service the socket carries it.
            self.done = not request.startswith(b"host")

    def _on_message(self, direction: int, msg: bytes) -> None:
        command = msg[:4]
        arg0 = int.from_bytes(msg[4:8], "little")
        data = msg[HDR_LEN:]
        self.sink.add("fpc.adb.command", command.decode().lower())
        if command == b"CNXN":
            self._on_connect(arg0, int.from_bytes(msg[8:12], "little"), data)
        elif command == b"AUTH" and arg0 in AUTH_TYPES:
            self.sink.add("fpc.adb.auth_type", AUTH_TYPES[arg0])
        elif command == b"OPEN":
            self._add_service(data)
        elif command == b"STLS":
            self._stls[direction] = True
            if all(self._stls):
                self.handoff = (self._bufs[0].rest(), self._bufs[1].rest())
                self.done = True

    def _on_connect(self, version: int, max_data: int, identity: bytes) -> None:
        self.sink.add("fpc.adb.version", f"0x{version:08x}")
        self.sink.add("fpc.adb.max_payload", max_data)
        parts = identity.rstrip(b"\x00").split(b":")
        if parts[0]:
            self.sink.add("fpc.adb.system_type", _text(parts[0]))
        if len(parts) > 1 and parts[1]:
            self.sink.add("fpc.adb.serial", _text(parts[1]))

    def _add_service(self, destination: bytes) -> None:
        # "service:arguments"; shell v2 adds options first ("shell,v2,pty:ls").
        service = re.split(rb"[:,]", destination.rstrip(b"\x00"), maxsplit=1)[0]
        if service:
            self.sink.add("fpc.adb.service", _text(service))


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")


register(
    ParserSpec(
        name="adb",
        transports=frozenset({"tcp"}),
        ports=frozenset({5555, SERVER_PORT}),
        classify=classify,
        create=AdbParser,
    )
)
