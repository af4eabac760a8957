"""X.509 certificates a TLS server sends: the SPI fields of each one.

In: the DER bytes of one certificate from the TLS Certificate message
(`fpc.appl.tls`), whose framing the TLS parser has already checked. Out:
subject and issuer common names and organizations, serial number, validity,
subject alternative names, public key algorithm and SHA-1 fingerprint, as
`tls.server.x509.*` and `tls.server.hash.sha1` values. The DER is decoded by
the `cryptography` package; a certificate it refuses raises `ParseError`.

Layout (RFC 5280 section 4.1), all DER::

    Certificate  SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    tbs          SEQUENCE { [0] version, serialNumber INTEGER, signature,
                            issuer Name, validity { notBefore, notAfter },
                            subject Name, subjectPublicKeyInfo, [3] extensions }
"""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from fpc.appl.cursor import ParseError
from fpc.appl.sink import FieldSink

MAX_CERT_BYTES = 32 * 1024  # a certificate longer than this is not decoded
MAX_ALT_NAMES = 512  # subject alternative names kept per certificate (sink limit too)
_PREFIX = "tls.server.x509."


def add_certificate(sink: FieldSink, der: bytes) -> None:
    """Adds the fields of one DER certificate to `sink`."""
    if len(der) > MAX_CERT_BYTES:
        raise ParseError(f"x509 certificate of {len(der)} bytes over {MAX_CERT_BYTES}")
    try:
        with warnings.catch_warnings():  # e.g. a negative serial number
            warnings.simplefilter("ignore")
            cert = x509.load_der_x509_certificate(der)
            _add_fields(sink, cert)
    except (ValueError, KeyError, TypeError) as exc:
        # cryptography decodes names and extensions lazily, so broken DER can
        # raise here too, and not only ValueError: a name attribute with an
        # unknown string tag raises KeyError, a BIT STRING one TypeError
        raise ParseError(f"x509 certificate not decodable: {exc!r}") from exc
    sink.add("tls.server.hash.sha1", hashlib.sha1(der).hexdigest().upper())


def _add_fields(sink: FieldSink, cert: x509.Certificate) -> None:
    for part, name in (("subject", cert.subject), ("issuer", cert.issuer)):
        for value in _attributes(name, NameOID.COMMON_NAME):
            sink.add(f"{_PREFIX}{part}.common_name", value)
        for value in _attributes(name, NameOID.ORGANIZATION_NAME):
            sink.add(f"{_PREFIX}{part}.organization", value)
    sink.add(_PREFIX + "serial_number", serial_hex(cert.serial_number))
    sink.add(_PREFIX + "not_before", _iso(cert.not_valid_before_utc))
    sink.add(_PREFIX + "not_after", _iso(cert.not_valid_after_utc))
    for alt in _alt_names(cert)[:MAX_ALT_NAMES]:
        sink.add(_PREFIX + "alternative_names", alt)
    algorithm = _key_algorithm(cert)
    if algorithm:
        sink.add(_PREFIX + "public_key_algorithm", algorithm)


def serial_hex(serial: int) -> str:
    """The serial as its DER content octets in upper-case hex (ECS spelling).

    DER keeps a leading 00 octet when the top bit of a positive number is set,
    so 0xB27E... is written "00B27E...", as it is on the wire.
    """
    if serial < 0:
        size = (serial.bit_length() + 8) // 8
        return serial.to_bytes(size, "big", signed=True).hex().upper()
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big").hex().upper()


def _attributes(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    out = []
    for attr in name.get_attributes_for_oid(oid):
        value = attr.value
        out.append(value if isinstance(value, str) else value.hex())
    return out


def _alt_names(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(ext.value.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
    return names


def _key_algorithm(cert: x509.Certificate) -> str:
    """ECS-style algorithm name of the subject public key ('RSA', 'ECDSA', ...)."""
    try:
        key = cert.public_key()
    except Exception:  # a key type or curve `cryptography` does not support
        return ""
    for kind, label in _KEY_TYPES:
        if isinstance(key, kind):
            return label
    return ""


_KEY_TYPES: tuple[tuple[type, str], ...] = (
    (rsa.RSAPublicKey, "RSA"),
    (ec.EllipticCurvePublicKey, "ECDSA"),
    (dsa.DSAPublicKey, "DSA"),
    (ed25519.Ed25519PublicKey, "Ed25519"),
    (ed448.Ed448PublicKey, "Ed448"),
)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
