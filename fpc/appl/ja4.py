"""JA4 fingerprint of a TLS or QUIC ClientHello (FoxIO JA4 specification).

In: the parts of one ClientHello that `fpc.appl.tls` (over TCP) and
`fpc.appl.quic` (inside QUIC Initial packets) have read. Out: the JA4 text,
three parts joined by '_'::

    a  transport(1: t|q|d) version(2) sni(1: d|i) ciphers(2) extensions(2) alpn(2)
    b  first 12 hex of SHA-256 over the sorted cipher suites (4-hex, ',')
    c  first 12 hex of SHA-256 over the sorted extensions without SNI and ALPN,
       then '_' and the signature algorithms in wire order (when any)

GREASE values (RFC 8701) are left out everywhere; counts stop at 99.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
EXT_SERVER_NAME, EXT_ALPN = 0x0000, 0x0010
_VERSIONS = {
    0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3",
    0x0200: "s2", 0x0002: "s2", 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3",
}  # fmt: skip
EMPTY_HASH = "000000000000"


@dataclass
class HelloParts:
    """What JA4 needs from one ClientHello, in wire order."""

    legacy_version: int
    ciphers: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    alpn: list[bytes] = field(default_factory=list)


def ja4(parts: HelloParts, transport: str = "t") -> str:
    ciphers = [c for c in parts.ciphers if c not in GREASE]
    exts = [e for e in parts.extensions if e not in GREASE]
    head = (
        transport
        + _version(parts)
        + ("d" if EXT_SERVER_NAME in exts else "i")
        + f"{min(len(ciphers), 99):02d}"
        + f"{min(len(exts), 99):02d}"
        + _alpn(parts.alpn)
    )
    cipher_hash = _hash12(_hex_list(sorted(ciphers)))
    rest = sorted(e for e in exts if e not in (EXT_SERVER_NAME, EXT_ALPN))
    ext_text = _hex_list(rest)
    sigs = [s for s in parts.signature_algorithms if s not in GREASE]
    if sigs:
        ext_text += "_" + _hex_list(sigs)
    ext_hash = _hash12(ext_text) if rest else EMPTY_HASH
    return f"{head}_{cipher_hash}_{ext_hash}"


def _version(parts: HelloParts) -> str:
    versions = [v for v in parts.supported_versions if v not in GREASE]
    best = max(versions) if versions else parts.legacy_version
    return _VERSIONS.get(best, "00")


def _alpn(names: list[bytes]) -> str:
    if not names or not names[0]:
        return "00"
    first = names[0]
    ends = bytes((first[0], first[-1]))
    if all(chr(b).isascii() and chr(b).isalnum() for b in ends):
        return ends.decode("ascii")
    text = first.hex()
    return text[0] + text[-1]


def _hex_list(values: list[int]) -> str:
    return ",".join(f"{v:04x}" for v in values)


def _hash12(text: str) -> str:
    if not text:
        return EMPTY_HASH
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]
