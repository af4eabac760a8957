"""BER/DER reading for the ASN.1 protocols (SNMP, LDAP, Kerberos).

In: one protocol message a parser has framed. Out: tag, length and a
bounded cursor over each value, integers, strings and OBJECT IDENTIFIERs. A
length past the enclosing value raises `ParseError`, like every cursor read.

Layout (ITU-T X.690 section 8.1)::

    TLV     identifier(8) length value
    ident   class(2) constructed(1) number(5)    (number 31: high tag numbers)
    length  0lllllll  |  1nnnnnnn + n bytes (big-endian)   (0x80: indefinite)
"""

from __future__ import annotations

from fpc.appl.cursor import Cursor, ParseError

MAX_LENGTH_BYTES = 4  # longer length fields are refused
MAX_DEPTH = 16  # nesting followed by the parsers, as a bound on recursion

SEQUENCE, INTEGER, OCTET_STRING, OID, ENUMERATED = 0x30, 0x02, 0x04, 0x06, 0x0A
GENERAL_STRING = 0x1B


def read_tlv(
    c: Cursor, what: str = "ber value", clamp: bool = False
) -> tuple[int, Cursor]:
    """(identifier byte, cursor over the value); the cursor moves past it.

    With `clamp`, a length past the end of `c` is cut to what `c` holds (for
    values whose writers are known to get an outer length wrong)."""
    tag = c.u8(f"{what} tag")
    if tag & 0x1F == 0x1F:
        raise ParseError(f"{what}: high tag numbers are not used by these protocols")
    first = c.u8(f"{what} length")
    if first < 0x80:
        size = first
    elif first == 0x80:
        raise ParseError(f"{what}: indefinite length is not allowed here")
    else:
        count = first & 0x7F
        if count > MAX_LENGTH_BYTES:
            raise ParseError(f"{what}: {count}-byte length field")
        size = int.from_bytes(c.take(count, f"{what} length"), "big")
    return tag, c.sub(min(size, c.remaining) if clamp else size, what)


def expect(c: Cursor, tag: int, what: str, clamp: bool = False) -> Cursor:
    got, value = read_tlv(c, what, clamp)
    if got != tag:
        raise ParseError(f"{what}: tag 0x{got:02x} where 0x{tag:02x} was expected")
    return value


def read_int(c: Cursor, what: str = "ber integer") -> int:
    value = c.take(c.remaining, what)
    if not 0 < len(value) <= 8:
        raise ParseError(f"{what}: {len(value)}-byte integer")
    return int.from_bytes(value, "big", signed=True)


def read_text(c: Cursor, what: str = "ber string") -> str:
    return c.take(c.remaining, what).decode("utf-8", "backslashreplace")


def oid_text(raw: bytes) -> str:
    """Dotted OBJECT IDENTIFIER (X.690 section 8.19)."""
    if not raw or raw[-1] & 0x80:
        raise ParseError(f"ber oid {raw[:16].hex()} is empty or cut")
    arcs: list[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])
