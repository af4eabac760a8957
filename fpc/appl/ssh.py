"""SSH parser: the version banner and the KEXINIT of each side.

In: the in-order bytes of each direction from `fpc.appl.state`. Out: the
client's and server's identification strings in `fpc.ssh.client` and
`fpc.ssh.server`, and the HASSH of each side's KEXINIT (MD5 of the algorithm
lists it offers) in `fpc.ssh.hassh` and `fpc.ssh.hassh_server`. Done once
both KEXINITs are read; what follows the key exchange is encrypted.

Layouts (RFC 4253 sections 4.2, 6 and 7.1); a server may send other lines
before its banner::

    banner   "SSH-" protoversion "-" softwareversion [SP comments] CR LF (<= 255)
    packet   packet_length(32) padding_length(8) payload padding [mac]
    KEXINIT  20(8) cookie(16B) 10 * name-list(string) first_kex_follows(8)
             reserved(32)             (kex, host key, enc c2s, enc s2c,
                                       mac c2s, mac s2c, comp c2s, comp s2c, ...)
    string   length(32) bytes
    HASSH    md5("kex;enc;mac;comp") of the sender's own direction's lists
"""

from __future__ import annotations

import hashlib

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

MAX_BANNER_BYTES = 255  # RFC 4253 section 4.2, CR LF included
MAX_PRE_BANNER_BYTES = 1024  # other lines a server may send before its banner
MAX_PACKET_BYTES = 35000  # RFC 4253 section 6.1: the size every peer accepts
MAX_PACKETS = 4  # packets read per side looking for the KEXINIT
MSG_KEXINIT = 20
_FIELDS = ("fpc.ssh.client", "fpc.ssh.server")
_HASSH_FIELDS = ("fpc.ssh.hassh", "fpc.ssh.hassh_server")
# Name-lists of a KEXINIT in HASSH order: kex, then enc, mac and comp of
# the client->server (client's HASSH) or server->client (server's) direction.
_HASSH_LISTS = ((0, 2, 4, 6), (0, 3, 5, 7))


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    if data.startswith(b"SSH-"):
        return Verdict.YES
    return Verdict.MORE if b"SSH-".startswith(data) else Verdict.NO


class SshParser(Parser):
    name = "ssh"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = [b"", b""]
        self._seen = [False, False]  # banner read
        self._over = [False, False]  # nothing more wanted from the side
        self._packets = [0, 0]

    def feed(self, direction: int, data: bytes) -> None:
        if self._over[direction]:
            return
        buf = self._bufs[direction] + data
        if not self._seen[direction]:
            buf = self._read_banner(direction, buf)
        if self._seen[direction]:
            buf = self._read_packets(direction, buf)
        self._bufs[direction] = b"" if self._over[direction] else buf

    def end(self, direction: int) -> None:
        self._seen[direction] = self._over[direction] = True
        self.done = all(self._over)

    def _read_banner(self, direction: int, buf: bytes) -> bytes:
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
        return buf

    def _on_banner(self, direction: int, line: bytes) -> None:
        if len(line) + 2 > MAX_BANNER_BYTES:
            raise ParseError(f"ssh banner of {len(line)} bytes exceeds 255 with CRLF")
        text = line.decode("ascii", "backslashreplace")
        self.sink.add(_FIELDS[direction], text)
        self._seen[direction] = True
        if line.startswith(b"SSH-1.") and not line.startswith(b"SSH-1.99"):
            self._finish(direction)  # SSH 1 has no KEXINIT

    def _read_packets(self, direction: int, buf: bytes) -> bytes:
        while len(buf) >= 5 and not self._over[direction]:
            size = int.from_bytes(buf[:4], "big")
            if not 5 <= size + 4 <= MAX_PACKET_BYTES:
                raise ParseError(f"ssh packet length {size} (direction {direction})")
            if len(buf) < 4 + size:
                break
            packet, buf = buf[4 : 4 + size], buf[4 + size :]
            self._on_packet(direction, packet)
        return buf

    def _on_packet(self, direction: int, packet: bytes) -> None:
        self._packets[direction] += 1
        padding = packet[0]
        payload = packet[1 : len(packet) - padding]
        if payload[:1] == bytes([MSG_KEXINIT]):
            lists = read_kexinit(payload)
            text = ";".join(lists[i] for i in _HASSH_LISTS[direction])
            self.sink.add(
                _HASSH_FIELDS[direction], hashlib.md5(text.encode()).hexdigest()
            )
            self._finish(direction)
        elif self._packets[direction] >= MAX_PACKETS:
            self._finish(direction)

    def _finish(self, direction: int) -> None:
        self._over[direction] = True
        self.done = all(self._over)


def read_kexinit(payload: bytes) -> list[str]:
    """The ten name-lists of a KEXINIT payload (message number first)."""
    c = Cursor(payload, 1)
    c.skip(16, "ssh kexinit cookie")
    lists = []
    for _ in range(10):
        raw = c.take(c.u32("ssh name-list length"), "ssh name-list")
        lists.append(raw.decode("ascii", "backslashreplace"))
    return lists


register(
    ParserSpec(
        name="ssh",
        transports=frozenset({"tcp"}),
        ports=frozenset({22, 2222}),
        classify=classify,
        create=SshParser,
    )
)
