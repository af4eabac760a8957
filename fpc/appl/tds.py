"""TDS parser (Microsoft SQL Server and Sybase, TCP 1433/2638/...): the login.

In: the in-order bytes of each direction from `fpc.appl.state`. Out:
the user, client host, application, server and database of a TDS 7+ LOGIN7
message, and the user and host of a TDS 4.x/5 login, in `fpc.tds.*`; NTLMSSP
of integrated security (in the LOGIN7, SSPI packets and the server's replies)
goes to `fpc.appl.ntlm`.

Layouts (MS-TDS sections 2.2.3.1 and 2.2.6.4; Sybase TDS 5.0 login record)::

    packet   type(8) status(8) length(16) spid(16) packet_id(8) window(8) data
             type 0x10 LOGIN7, 0x11 SSPI, 0x12 PRELOGIN, 0x02 TDS 4.x/5 login
    LOGIN7   length(32le) version(32le) ... 36-byte header, then offset(16le)
             length(16le, in UTF-16 characters) pairs: HostName, UserName,
             Password, AppName, ServerName, Extension, CltIntName, Language,
             Database; the strings are UTF-16LE, offsets from the LOGIN7 start
    TDS5     hostname(30B) hostname_len(8) username(30B) username_len(8) ...
"""

from __future__ import annotations

from fpc.appl import ntlm
from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

PKT_TDS5_LOGIN, PKT_LOGIN7, PKT_SSPI, PKT_PRELOGIN = 0x02, 0x10, 0x11, 0x12
HDR_LEN = 8
STATUS_EOM = 0x01
MAX_LOGIN = 64 * 1024
MAX_PACKETS = 8  # packets read per direction looking for the login
LOGIN7_FIELDS = (
    (36, "fpc.tds.client_host"), (40, "fpc.tds.user"), (48, "fpc.tds.application"),
    (52, "fpc.tds.server"), (68, "fpc.tds.database"),
)  # fmt: skip
LOGIN7_SSPI = 78  # offset(16) length(16) of the SSPI (NTLM) blob


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client PRELOGIN or LOGIN7 packet header (or a TDS 5 login on port)."""
    if direction != 0:
        return Verdict.NO
    if len(data) < HDR_LEN:
        return (
            Verdict.MORE if data[:1] in (b"", b"\x10", b"\x12", b"\x02") else Verdict.NO
        )
    size = int.from_bytes(data[2:4], "big")
    if data[0] in (PKT_PRELOGIN, PKT_LOGIN7) and HDR_LEN < size <= 32768:
        return (
            Verdict.YES if data[1] in (0, STATUS_EOM) and data[6] <= 1 else Verdict.NO
        )
    ok = port_hint and data[0] == PKT_TDS5_LOGIN and size == 512
    return Verdict.YES if ok else Verdict.NO


def _frame_len(head: bytes) -> int:
    """A TDS packet: its 8-byte header holds the whole packet's length."""
    size = int.from_bytes(head[2:4], "big")
    if size < HDR_LEN:
        raise ParseError(f"tds packet length {size}")
    return size


class TdsParser(Parser):
    name = "tds"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._message = bytearray()
        self._packets = [0, 0]

    def feed(self, direction: int, data: bytes) -> None:
        if self._packets[direction] >= MAX_PACKETS:
            return
        buf = self._bufs[direction]
        buf.add(data)
        while self._packets[direction] < MAX_PACKETS:
            frame = buf.next_frame(HDR_LEN, _frame_len)
            if frame is None:
                break
            self._packets[direction] += 1
            head, packet = frame[:HDR_LEN], frame[HDR_LEN:]
            if direction == 0:
                self._on_packet(head[0], head[1], packet)
            elif ntlm.SIGNATURE in packet:  # an NTLM challenge in the login reply
                ntlm.scan(self.sink, packet)
        self.done = min(self._packets) >= MAX_PACKETS

    def _on_packet(self, kind: int, status: int, data: bytes) -> None:
        if kind == PKT_SSPI:
            ntlm.scan(self.sink, data)
        if kind not in (PKT_LOGIN7, PKT_TDS5_LOGIN):
            return
        if len(self._message) + len(data) > MAX_LOGIN:
            raise ParseError(f"tds login longer than {MAX_LOGIN} bytes")
        self._message += data
        if not status & STATUS_EOM and kind == PKT_LOGIN7:
            return  # the login continues in the next packet
        message, self._message = bytes(self._message), bytearray()
        if kind == PKT_LOGIN7:
            self._on_login7(message)
        else:
            self._on_tds5_login(message)

    def _on_login7(self, msg: bytes) -> None:
        for at, field in LOGIN7_FIELDS:
            c = Cursor(msg, at)
            offset, chars = c.u16le("tds login7 offset"), c.u16le("tds login7 length")
            if chars:
                raw = Cursor(msg, offset).take(2 * chars, "tds login7 string")
                self.sink.add(field, raw.decode("utf-16-le", "replace"))
        c = Cursor(msg, LOGIN7_SSPI)
        offset, size = c.u16le("tds sspi offset"), c.u16le("tds sspi length")
        if size:
            ntlm.scan(self.sink, Cursor(msg, offset).take(size, "tds sspi"))

    def _on_tds5_login(self, msg: bytes) -> None:
        for at, field in ((0, "fpc.tds.client_host"), (31, "fpc.tds.user")):
            c = Cursor(msg, at)
            raw = c.take(30, "tds5 login name")
            size = c.u8("tds5 login name length")
            if 0 < size <= 30:
                self.sink.add(field, raw[:size].decode("latin-1"))


register(
    ParserSpec(
        name="tds",
        transports=frozenset({"tcp"}),
        ports=frozenset({1433, 2638, 3106, 5000}),
        classify=classify,
        create=TdsParser,
    )
)
