"""Header fields of an e-mail message (RFC 5322), for `fpc.appl.smtp`.

In: the header block of one message, as the SMTP parser found it after DATA
(up to the blank line). Out: sender and recipient addresses, subject
(RFC 2047 encoded words decoded), Message-ID, mailer and content type in the
ECS `email.*` fields.

Layout (RFC 5322 section 2.2)::

    field     name ":" value CRLF, continued by lines that start with SP or HTAB
    encoded   "=?" charset "?" (B|Q) "?" text "?="     (RFC 2047, in Subject)
"""

from __future__ import annotations

import base64
import binascii
import re
from email.utils import getaddresses

from fpc.appl.sink import FieldSink

MAX_ADDRESSES = 64  # addresses read from one header field
_FOLD = re.compile(rb"\r?\n[ \t]")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_ADDRESS_FIELDS = {
    "from": "email.from.address",
    "to": "email.to.address",
    "cc": "email.cc.address",
    "reply-to": "email.reply_to.address",
    "sender": "email.sender.address",
}
_TEXT_FIELDS = {
    "message-id": "email.message_id",
    "x-mailer": "email.x_mailer",
    "user-agent": "email.x_mailer",
    "content-type": "email.content_type",
}


def header_fields(block: bytes) -> list[tuple[str, str]]:
    """(lowercase name, value) of each field, folded lines joined."""
    block = _FOLD.sub(b" ", block)
    out = []
    for line in block.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep and name and b" " not in name.strip():
            text = value.strip().decode("utf-8", "replace")
            out.append((name.strip().decode("ascii", "replace").lower(), text))
    return out


def decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; the text itself when it has none.

    Whitespace between two adjacent encoded words is dropped (RFC 2047
    section 6.2); other text is kept as it is, spaces included."""
    if "=?" not in value:
        return value
    out, pos, after_word = [], 0, False
    for word in _ENCODED_WORD.finditer(value):
        between = value[pos : word.start()]
        if not (after_word and not between.strip(" \t")):
            out.append(between)
        out.append(_decode_word(word))
        pos, after_word = word.end(), True
    out.append(value[pos:])
    return "".join(out)


def _decode_word(word: re.Match[str]) -> str:
    charset, kind, text = word.groups()
    charset = charset.split("*", 1)[0]  # an RFC 2231 language suffix
    try:
        if kind in "Bb":
            raw = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            raw = _Q_ESCAPE.sub(_q_byte, text.replace("_", " ").encode("ascii"))
        return raw.decode(charset, "replace")
    except (LookupError, ValueError, binascii.Error):
        return word.group(0)  # an unknown charset or broken encoding: raw text


def _q_byte(match: re.Match[bytes]) -> bytes:
    return bytes([int(match.group(1), 16)])


def add_headers(sink: FieldSink, block: bytes) -> None:
    for name, value in header_fields(block):
        if name == "subject":
            sink.add("email.subject", decode_words(value))
        elif name in _ADDRESS_FIELDS:
            for _, address in getaddresses([value])[:MAX_ADDRESSES]:
                if address:
                    sink.add(_ADDRESS_FIELDS[name], address)
        elif name in _TEXT_FIELDS and value:
            if name == "message-id":
                value = value.strip("<>")
            sink.add(_TEXT_FIELDS[name], value)
