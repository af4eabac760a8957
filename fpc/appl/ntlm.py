"""NTLMSSP messages found inside other protocols: user, domain and hosts.

In: bytes from the SMB, HTTP, SMTP and LDAP parsers that may hold NTLMSSP
messages (raw, or after base64 in HTTP and SMTP authentication). Out: the
message types, the user, domain and workstation of an AUTHENTICATE message
(or the domain and workstation a NEGOTIATE supplies), the target name of a
CHALLENGE, and the OS version each side states, in `fpc.ntlm.*`.

Layout (MS-NLMP section 2.2.1; all numbers little-endian)::

    header        "NTLMSSP\\0"(8B) type(32)
    field         length(16) max_length(16) offset(32)    (offset from header)
    NEGOTIATE 1   flags(32) domain(field) workstation(field) [version(8B)]
    CHALLENGE 2   target_name(field) flags(32) challenge(8B) reserved(8B)
                  target_info(field) [version(8B)]
    AUTHENTICATE 3 lm(field) nt(field) domain(field) user(field)
                  workstation(field) session_key(field) flags(32) [version(8B)]
    version       major(8) minor(8) build(16) reserved(24) revision(8)
"""

from __future__ import annotations

import base64
import binascii

from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.sink import FieldSink

SIGNATURE = b"NTLMSSP\x00"
# Listed among a session's protocols once a message was read in it (as
# Arkime lists it), though no parser of its own runs: it rides in others.
PROTOCOL = "ntlm"
NEGOTIATE, CHALLENGE, AUTHENTICATE = 1, 2, 3
FLAG_UNICODE, FLAG_VERSION = 0x00000001, 0x02000000
MAX_STRING = 512  # bytes of one name read
MAX_PER_BUFFER = 8  # messages looked for in one buffer
_NAMES = {
    NEGOTIATE: (("fpc.ntlm.domain", 16), ("fpc.ntlm.host", 24)),
    AUTHENTICATE: (
        ("fpc.ntlm.domain", 28),
        ("fpc.ntlm.user", 36),
        ("fpc.ntlm.host", 44),
    ),
    CHALLENGE: (("fpc.ntlm.target_name", 12),),
}
_FLAGS_AT = {NEGOTIATE: 12, CHALLENGE: 20, AUTHENTICATE: 60}
_VERSION_AT = {NEGOTIATE: 32, CHALLENGE: 48, AUTHENTICATE: 64}


def scan(sink: FieldSink, data: bytes) -> int:
    """Adds the fields of each NTLMSSP message in `data`; returns how many."""
    found = 0
    pos = data.find(SIGNATURE)
    while pos >= 0 and found < MAX_PER_BUFFER:
        add_message(sink, data[pos:])
        found += 1
        pos = data.find(SIGNATURE, pos + len(SIGNATURE))
    return found


def scan_base64(sink: FieldSink, text: bytes) -> int:
    """As `scan`, for a base64 token (HTTP and SMTP authentication)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return 0
    return scan(sink, raw)


def add_message(sink: FieldSink, blob: bytes) -> None:
    """Fields of one NTLMSSP message starting at `blob[0]`."""
    c = Cursor(blob)
    if c.take(8, "ntlm signature") != SIGNATURE:
        raise ParseError("ntlm message without the NTLMSSP signature")
    kind = c.u32le("ntlm message type")
    if kind not in _NAMES:
        raise ParseError(f"ntlm message type {kind} is not 1, 2 or 3")
    sink.add("fpc.ntlm.type", kind)
    flags = Cursor(blob, _FLAGS_AT[kind]).u32le("ntlm flags")
    unicode = bool(flags & FLAG_UNICODE) and kind != NEGOTIATE
    for field, at in _NAMES[kind]:
        name = _string(blob, at, unicode)
        if name:
            sink.add(field, name)
    if flags & FLAG_VERSION:
        version = _version(blob, _VERSION_AT[kind])
        if version:
            sink.add("fpc.ntlm.version", version)


def _string(blob: bytes, at: int, unicode: bool) -> str:
    """The name a field points to; '' when empty or damaged (longer than
    MAX_STRING or past the message's end): one damaged field, as in the
    AUTHENTICATE made to crash parsers (smbtorture-ntlmssp-moloch-crash),
    leaves the others readable."""
    c = Cursor(blob, at)
    size = c.u16le("ntlm string length")
    c.skip(2, "ntlm string max length")
    offset = c.u32le("ntlm string offset")
    if not size or size > MAX_STRING or offset + size > len(blob):
        return ""
    raw = blob[offset : offset + size]
    return raw.decode("utf-16-le" if unicode else "latin-1", "replace")


def _version(blob: bytes, at: int) -> str:
    """'major.minor.build', or '' when the header is too short to hold it."""
    if len(blob) < at + 8 or _payload_start(blob) < at + 8:
        return ""
    major, minor = blob[at], blob[at + 1]
    build = int.from_bytes(blob[at + 2 : at + 4], "little")
    return f"{major}.{minor}.{build}"


def _payload_start(blob: bytes) -> int:
    """Lowest string offset: the version field must lie before it."""
    kind = int.from_bytes(blob[8:12], "little")
    offsets = [
        int.from_bytes(blob[at + 4 : at + 8], "little")
        for _, at in _NAMES.get(kind, ())
        if int.from_bytes(blob[at : at + 2], "little")
    ]
    return min(offsets, default=len(blob))
