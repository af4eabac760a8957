"""DNP3 parser (TCP and UDP 20000): link addresses and application functions.

In: the in-order bytes of each direction (TCP) or the datagrams (UDP) of a
session from `fpc.appl.state`. Out: `fpc.dnp3.src` and `fpc.dnp3.dst` (link
addresses), `fpc.dnp3.function_code` and `fpc.dnp3.function` (its name) of
each frame whose user data starts an application fragment. After
MAX_FRAMES frames in either direction the parser stops.

Layout (IEEE 1815-2012 clauses 9.2 link, 8.2 transport, 4.2.2 application;
numbers little-endian)::

    link header  start(16)=0x05 0x64 length(8) control(8) dst(16) src(16) crc(16)
                 length: control + addresses + user data, 5..255
    user data    length - 5 bytes in blocks of up to 16, each with a crc(16)
    transport    FIR(1) FIN(1) sequence(6)
    application  control(8) function(8) ...  (in the fragment's first segment)
    crc          CRC-16/DNP: polynomial 0x3D65 reflected, complemented
"""

from __future__ import annotations

from fpc.appl.buffer import ByteBuffer
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

START = b"\x05\x64"
HDR_LEN = 10
MIN_LENGTH = 5
FIR = 0x40  # transport header: first segment of a fragment
MAX_FRAMES = 256
FUNCTIONS = {
    0: "Confirm", 1: "Read", 2: "Write", 3: "Select", 4: "Operate",
    5: "DirectOperate", 6: "DirectOperateNoResp", 7: "ImmediateFreeze",
    8: "ImmediateFreezeNoResp", 9: "FreezeClear", 10: "FreezeClearNoResp",
    11: "FreezeAtTime", 12: "FreezeAtTimeNoResp", 13: "ColdRestart",
    14: "WarmRestart", 15: "InitializeData", 16: "InitializeApplication",
    17: "StartApplication", 18: "StopApplication", 19: "SaveConfiguration",
    20: "EnableUnsolicited", 21: "DisableUnsolicited", 22: "AssignClass",
    23: "DelayMeasure", 24: "RecordCurrentTime", 25: "OpenFile", 26: "CloseFile",
    27: "DeleteFile", 28: "GetFileInfo", 29: "AuthenticateFile", 30: "AbortFile",
    31: "ActivateConfig", 32: "AuthenticateRequest", 33: "AuthenticateError",
    129: "Response", 130: "UnsolicitedResponse", 131: "AuthenticateResponse",
}  # fmt: skip


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc_dnp(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return ~crc & 0xFFFF


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A link header: start bytes, a valid length and, off port 20000, its CRC."""
    if not START.startswith(data[:2]):
        return Verdict.NO
    if len(data) < HDR_LEN:
        return Verdict.MORE if transport == "tcp" else Verdict.NO
    if data[2] < MIN_LENGTH:
        return Verdict.NO
    crc_ok = crc_dnp(data[:8]) == int.from_bytes(data[8:10], "little")
    return Verdict.YES if port_hint or crc_ok else Verdict.NO


def frame_len(head: bytes) -> int:
    """Bytes of the frame `head` (its first HDR_LEN bytes) starts: the header
    and the user data with a CRC after each block of 16."""
    data = head[2] - MIN_LENGTH
    return HDR_LEN + data + 2 * ((data + 15) // 16)


class Dnp3Parser(Parser):
    name = "dnp3"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._frames = [0, 0]

    def feed(self, direction: int, data: bytes) -> None:
        buf = self._bufs[direction]
        if self.transport != "tcp":
            buf.clear()  # a datagram holds whole frames
        buf.add(data)
        while not self.done and (frame := self._next(buf)) is not None:
            self._frames[direction] += 1
            self.done = max(self._frames) >= MAX_FRAMES
            self._on_frame(frame)

    def _next(self, buf: ByteBuffer) -> bytes | None:
        head = buf.peek(HDR_LEN)
        if len(head) < HDR_LEN:
            return None
        if head[:2] != START or head[2] < MIN_LENGTH:
            buf.clear()  # not at a frame start: the rest is not read
            self.done = True
            return None
        return buf.next_frame(HDR_LEN, frame_len)

    def _on_frame(self, frame: bytes) -> None:
        self.sink.add("fpc.dnp3.dst", int.from_bytes(frame[4:6], "little"))
        self.sink.add("fpc.dnp3.src", int.from_bytes(frame[6:8], "little"))
        block = frame[HDR_LEN : HDR_LEN + 16]  # the first user data block
        if len(block) >= 5 and block[0] & FIR:  # 3 bytes and their CRC at least
            code = block[2]
            self.sink.add("fpc.dnp3.function_code", code)
            self.sink.add("fpc.dnp3.function", FUNCTIONS.get(code, str(code)))


register(
    ParserSpec(
        name="dnp3",
        transports=frozenset({"tcp", "udp"}),
        ports=frozenset({20000}),
        classify=classify,
        create=Dnp3Parser,
    )
)
