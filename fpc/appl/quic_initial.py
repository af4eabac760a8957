"""QUIC Initial packets: remove their protection and collect their CRYPTO data.

In: one UDP datagram a QUIC client sent (from `fpc.appl.quic`). Out: the
CRYPTO frame pieces (offset, bytes) of each Initial packet in it. Initial
packets are protected with keys anyone can derive from the Destination
Connection ID (RFC 9001 section 5.2), so the ClientHello inside is readable.

Layouts (RFC 9000 sections 17.2.2 and 19.6, RFC 9001 section 5.4)::

    Initial  1 1 type(2) reserved(2) pn_len-1(2)  version(32)
             dcid_len(8) dcid  scid_len(8) scid  token_len(varint) token
             length(varint)  packet_number(8..32)  protected payload (AEAD)
    CRYPTO   0x06  offset(varint)  length(varint)  data
    keys     initial = HKDF-Extract(salt(version), dcid)
             client  = HKDF-Expand-Label(initial, "client in", 32)
             key, iv, hp = Expand-Label(client, "quic key" 16 | "quic iv" 12 |
                                        "quic hp" 16)   (QUIC v2: "quicv2 ...")
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fpc.appl.cursor import Cursor, ParseError

VERSION_1, VERSION_2 = 0x00000001, 0x6B3343CF
_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_DRAFT29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # 29-32
_SALT_DRAFT23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # 23-28
MAX_CID_LEN = 20
MIN_CLIENT_INITIAL = 1200  # RFC 9000 section 14.1: client Initials are padded
FRAME_PADDING, FRAME_PING, FRAME_ACK, FRAME_ACK_ECN, FRAME_CRYPTO = 0, 1, 2, 3, 6
FRAME_CLOSE = 0x1C
MAX_ACK_RANGES = 256


def initial_salt(version: int) -> bytes | None:
    """The Initial salt of a version with known Initial keys, else None."""
    if version == VERSION_1:
        return _SALT_V1
    if version == VERSION_2:
        return _SALT_V2
    if 0xFF00001D <= version <= 0xFF000020:
        return _SALT_DRAFT29
    if 0xFF000017 <= version <= 0xFF00001C:
        return _SALT_DRAFT23
    return None


def version_name(version: int) -> str:
    """'1', '2', 'draft-29', or the number in hex."""
    if version == VERSION_1:
        return "1"
    if version == VERSION_2:
        return "2"
    if version >> 8 == 0xFF0000:
        return f"draft-{version & 0xFF}"
    return f"0x{version:08x}"


def is_initial(first: int, version: int) -> bool:
    kind = (first >> 4) & 3
    return first & 0xC0 == 0xC0 and kind == (1 if version == VERSION_2 else 0)


def _expand_label(secret: bytes, label: str, length: int) -> bytes:
    """HKDF-Expand-Label of TLS 1.3 (RFC 8446 section 7.1), empty context."""
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out, block = b"", b""
    counter = 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), "sha256").digest()
        out += block
        counter += 1
    return out[:length]


def client_keys(version: int, dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) protecting the client's Initial packets."""
    salt = initial_salt(version)
    if salt is None:
        raise ParseError(f"quic version {version_name(version)} has no Initial keys")
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()
    client = _expand_label(initial, "client in", 32)
    prefix = "quicv2 " if version == VERSION_2 else "quic "
    return (
        _expand_label(client, prefix + "key", 16),
        _expand_label(client, prefix + "iv", 12),
        _expand_label(client, prefix + "hp", 16),
    )


class InitialPacket:
    """The parts of one long-header packet needed to decrypt it."""

    __slots__ = ("start", "version", "first", "dcid", "pn_offset", "end")

    def __init__(
        self, start: int, version: int, first: int, dcid: bytes, pn: int, end: int
    ) -> None:
        self.start = start  # offset of the packet in the datagram
        self.version = version
        self.first = first
        self.dcid = dcid
        self.pn_offset = pn
        self.end = end  # offset after this packet in the datagram


def read_long_header(data: bytes, pos: int) -> InitialPacket:
    c = Cursor(data, pos)
    first = c.u8("quic first byte")
    version = c.u32("quic version")
    dcid_len = c.u8("quic dcid length")
    if dcid_len > MAX_CID_LEN:
        raise ParseError(f"quic dcid length {dcid_len} over {MAX_CID_LEN}")
    dcid = c.take(dcid_len, "quic dcid")
    c.skip(c.u8("quic scid length"), "quic scid")
    if is_initial(first, version):
        c.skip(c.varint("quic token length"), "quic token")
    length = c.varint("quic packet length")
    if length > c.remaining:
        raise ParseError(f"quic packet length {length} runs past the datagram")
    return InitialPacket(pos, version, first, dcid, c.pos, c.pos + length)


def decrypt_initial(data: bytes, pkt: InitialPacket, dcid: bytes) -> bytes:
    """The plaintext payload of a client Initial packet, keys from `dcid`."""
    key, iv, hp = client_keys(pkt.version, dcid)
    sample_at = pkt.pn_offset + 4
    if sample_at + 16 > pkt.end:
        raise ParseError("quic initial packet too short for its header sample")
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(data[sample_at : sample_at + 16]) + encryptor.finalize()
    first = pkt.first ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    protected = data[pkt.pn_offset : pkt.pn_offset + pn_len]
    pn_bytes = bytes(
        b ^ m for b, m in zip(protected, mask[1 : 1 + pn_len], strict=True)
    )
    header = bytes([first]) + data[pkt.start + 1 : pkt.pn_offset] + pn_bytes
    nonce = bytearray(iv)
    for i, b in enumerate(reversed(pn_bytes)):
        nonce[-1 - i] ^= b
    payload = data[pkt.pn_offset + pn_len : pkt.end]
    try:
        return AESGCM(key).decrypt(bytes(nonce), payload, header)
    except InvalidTag as exc:
        raise ParseError("quic initial packet does not decrypt") from exc


def crypto_frames(plain: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of each CRYPTO frame; stops at a frame it cannot skip."""
    c = Cursor(plain)
    out = []
    while c.remaining:
        ftype = c.varint("quic frame type")
        if ftype == FRAME_CRYPTO:
            offset = c.varint("quic crypto offset")
            out.append((offset, c.take(c.varint("quic crypto length"), "quic crypto")))
        elif ftype in (FRAME_ACK, FRAME_ACK_ECN):
            _skip_ack(c, ftype)
        elif ftype == FRAME_CLOSE:
            c.varint("quic error code")
            c.varint("quic frame type")
            c.skip(c.varint("quic reason length"), "quic reason")
        elif ftype not in (FRAME_PADDING, FRAME_PING):
            break  # not allowed in an Initial (RFC 9000 section 12.4)
    return out


def _skip_ack(c: Cursor, ftype: int) -> None:
    c.varint("quic largest acknowledged")
    c.varint("quic ack delay")
    ranges = c.varint("quic ack range count")
    if ranges > MAX_ACK_RANGES:
        raise ParseError(f"quic ack with {ranges} ranges")
    c.varint("quic first ack range")
    for _ in range(2 * ranges):
        c.varint("quic ack range")
    if ftype == FRAME_ACK_ECN:
        for _ in range(3):
            c.varint("quic ecn count")
