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

import re
from email.header import decode_header, make_header
from email.utils import getaddresses

from fpc.appl.sink import FieldSink

MAX_ADDRESSES = 64  # addresses read from one header field
_FOLD = re.compile(rb"\r?\n[ \t]")
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
    """RFC 2047 encoded words decoded; the text itself when it has none."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value  # an unknown charset or broken encoding: keep the raw text


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
