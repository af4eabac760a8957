"""Conformance rows for the app-layer fields beyond HTTP, DNS, TLS basics.

In: nothing at import; `app_detail_specs()` is called by
`fpc.conformance.active_specs`. Out: one `FieldSpec` per Arkime field whose
fact fpc also extracts: certificates, JA4, HASSH, QUIC, mail, DHCP,
Kerberos, LDAP, NTLM, SNMP, NTP, MySQL, PostgreSQL, RADIUS, IRC, STUN, RDP,
MQTT, BACnet, DNP3, ADB, HTTP body hashes and versions. Each normalization is listed in
docs/ARKIME.md; a row is left out when fpc lacks one of its fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fpc.conformance import (
    APP,
    FieldSpec,
    Getter,
    Record,
    a_set,
    as_list,
    f_sets,
    is_number,
    iso_to_ms,
    lower,
    norm_ip,
    norm_mac,
    value_set,
)
from fpc.fields import get_path

X509 = "tls.server.x509."
# Arkime's OpenSSL names of key algorithms, as fpc names them.
KEY_ALGORITHMS = {
    "rsaEncryption": "RSA",
    "id-ecPublicKey": "ECDSA",
    "dsaEncryption": "DSA",
    "ED25519": "Ed25519",
    "ED448": "Ed448",
}
# Arkime's LDAP bind kinds in fpc's words (NTLM binds come in two steps).
LDAP_AUTH = {"none": "anonymous", "ntlmsspNegotiate": "ntlm", "ntlmsspAuth": "ntlm"}
# fpc fields that hold a user name, for Arkime's cross-protocol `user`.
# Arkime fills `user` from NTLM, SNMPv3, TDS, SMTP AUTH and MQTT logins and RDP
# cookies (and SMB, which fpc does not read); its HTTP, SOCKS, MySQL,
# PostgreSQL, RADIUS, IMAP and Kerberos users stay in their own fields.
USER_FIELDS = ("fpc.ntlm.user", "fpc.snmp.user", "fpc.tds.user", "fpc.rdp.cookie",
               "fpc.smtp.user", "fpc.mqtt.user")  # fmt: skip


def arkime_objects(key: str, sub: str, norm: Callable[[Any], object] = str) -> Getter:
    """Values of `sub` over the objects of Arkime's list `key` (cert, ...)."""

    def get(doc: Record) -> object:
        out: set[object] = set()
        for obj in as_list(doc.get(key)):
            if isinstance(obj, dict):
                out |= value_set(obj.get(sub), norm)
        return frozenset(out)

    return get


def a_union(*paths: str, norm: Callable[[Any], object] = str) -> Getter:
    return f_sets(*paths, norm=norm)


def hex_digits(value: object) -> str:
    """Hex without separators, lowercase (Arkime 'af:cc:..', fpc 'AFCC..')."""
    return str(value).replace(":", "").lower()


def serial(value: object) -> str:
    """Serial numbers as hex without the sign-padding zero byte DER adds."""
    text = hex_digits(value)
    return text[2:] if len(text) > 2 and text.startswith("00") else text


def to_ms(value: object) -> int:
    """Arkime's ms since the epoch as is; fpc's RFC 3339 date to ms."""
    return value if isinstance(value, int) else iso_to_ms(str(value))


def key_algorithm(value: object) -> str:
    return KEY_ALGORITHMS.get(str(value), str(value))


def ntp_stratum(value: object) -> str:
    """fpc's stratum number as Arkime's class name."""
    if isinstance(value, str) and not is_number(value):
        return value
    n = int(str(value))
    if n <= 1:
        return ("unspecified", "primary")[n]
    return "secondary" if n < 16 else "unsynchronized" if n == 16 else "reserved"


def http_version(value: object) -> str:
    """'2' (fpc) and '2.0' (Arkime) name the same version."""
    text = str(value)
    return text if "." in text else text + ".0"


def ldap_auth(value: object) -> str:
    return LDAP_AUTH.get(str(value), str(value))


def ldap_bind_dns(doc: Record) -> object:
    """Arkime's bind names less its '<ROOT>' for an empty DN (fpc keeps none)."""
    return value_set(get_path(doc, "ldap.bindname")) - {"<ROOT>"}


def app_detail_specs() -> list[FieldSpec]:
    s = FieldSpec
    x = X509
    return [
        s("cert.subjectCN", APP, arkime_objects("cert", "subjectCN", lower),
          a_set(x + "subject.common_name", lower), (x + "subject.common_name",)),
        s("cert.subjectON", APP, arkime_objects("cert", "subjectON"),
          a_set(x + "subject.organization"), (x + "subject.organization",)),
        s("cert.issuerCN", APP, arkime_objects("cert", "issuerCN", lower),
          a_set(x + "issuer.common_name", lower), (x + "issuer.common_name",)),
        s("cert.issuerON", APP, arkime_objects("cert", "issuerON"),
          a_set(x + "issuer.organization"), (x + "issuer.organization",)),
        s("cert.serial", APP, arkime_objects("cert", "serial", serial),
          a_set(x + "serial_number", serial), (x + "serial_number",)),
        s("cert.notBefore", APP, arkime_objects("cert", "notBefore", to_ms),
          a_set(x + "not_before", to_ms), (x + "not_before",)),
        s("cert.notAfter", APP, arkime_objects("cert", "notAfter", to_ms),
          a_set(x + "not_after", to_ms), (x + "not_after",)),
        s("cert.alt", APP, arkime_objects("cert", "alt", lower),
          a_set(x + "alternative_names", lower), (x + "alternative_names",)),
        s("cert.publicAlgorithm", APP,
          arkime_objects("cert", "publicAlgorithm", key_algorithm),
          a_set(x + "public_key_algorithm"), (x + "public_key_algorithm",)),
        s("cert.hash", APP, arkime_objects("cert", "hash", hex_digits),
          a_set("tls.server.hash.sha1", hex_digits), ("tls.server.hash.sha1",)),
        s("tls.ja4", APP, a_set("tls.ja4"), a_set("tls.client.ja4"),
          ("tls.client.ja4",)),
        s("ssh.hassh", APP, a_set("ssh.hassh"), a_set("fpc.ssh.hassh"),
          ("fpc.ssh.hassh",)),
        s("ssh.hasshServer", APP, a_set("ssh.hasshServer"),
          a_set("fpc.ssh.hassh_server"), ("fpc.ssh.hassh_server",)),
        s("quic.version", APP, a_set("quic.version"), a_set("fpc.quic.version"),
          ("fpc.quic.version",)),
        s("quic.host", APP, a_set("quic.host", lower),
          a_set("tls.client.server_name", lower), ("tls.client.server_name",),
          is_quic),
        s("quic.useragent", APP, a_set("quic.useragent"),
          a_set("fpc.quic.user_agent"), ("fpc.quic.user_agent",)),
        s("email.smtpHello", APP, a_set("email.smtpHello"), a_set("fpc.smtp.helo"),
          ("fpc.smtp.helo",)),
        s("email.src", APP, a_set("email.src", lower),
          a_union("fpc.smtp.mail_from", "email.from.address", norm=lower),
          ("fpc.smtp.mail_from", "email.from.address")),
        s("email.dst", APP, a_set("email.dst", lower),
          a_union("fpc.smtp.rcpt_to", "email.to.address", "email.cc.address",
                  norm=lower),
          ("fpc.smtp.rcpt_to", "email.to.address", "email.cc.address")),
        s("email.subject", APP, a_set("email.subject"), a_set("email.subject"),
          ("email.subject",)),
        s("email.id", APP, a_set("email.id"), a_set("email.message_id"),
          ("email.message_id",)),
        s("email.contentType", APP, a_set("email.contentType"),
          a_set("email.content_type"), ("email.content_type",)),
        s("email.useragent", APP, a_set("email.useragent"),
          a_set("email.x_mailer"), ("email.x_mailer",)),
        s("email.folder", APP, a_set("email.folder"), a_set("fpc.imap.mailbox"),
          ("fpc.imap.mailbox",)),
        s("dhcp.type", APP, a_set("dhcp.type"), a_set("fpc.dhcp.message_type"),
          ("fpc.dhcp.message_type",)),
        s("dhcp.id", APP, a_set("dhcp.id"), a_set("fpc.dhcp.transaction_id"),
          ("fpc.dhcp.transaction_id",)),
        s("dhcp.mac", APP, a_set("dhcp.mac", norm_mac),
          a_set("fpc.dhcp.client_mac", norm_mac), ("fpc.dhcp.client_mac",)),
        s("dhcp.requestIp", APP, a_set("dhcp.requestIp", norm_ip),
          a_union("fpc.dhcp.requested_ip", "fpc.dhcp.assigned_ip", norm=norm_ip),
          ("fpc.dhcp.requested_ip", "fpc.dhcp.assigned_ip")),
        *same_rows("krb5", ("cname", "sname", "realm")),
        s("krb5.etype", APP, a_set("krb5.etype"), fpc_krb5_etypes,
          ("fpc.krb5.etype",)),
        s("ldap.authtype", APP, a_set("ldap.authtype", ldap_auth),
          a_set("fpc.ldap.auth_type"), ("fpc.ldap.auth_type",)),
        s("ldap.bindname", APP, ldap_bind_dns, a_set("fpc.ldap.bind_dn"),
          ("fpc.ldap.bind_dn",)),
        *same_rows("ntlm", ("domain", "host", "version")),
        s("ntlm.targetName", APP, a_set("ntlm.targetName"),
          a_set("fpc.ntlm.target_name"), ("fpc.ntlm.target_name",)),
        s("ntlm.type", APP, a_set("ntlm.type", int), a_set("fpc.ntlm.type", int),
          ("fpc.ntlm.type",)),
        s("snmp.version", APP, a_set("snmp.version", int),
          a_set("fpc.snmp.version", int), ("fpc.snmp.version",)),
        s("snmp.community", APP, a_set("snmp.community"),
          a_set("fpc.snmp.community"), ("fpc.snmp.community",)),
        s("snmp.type", APP, a_set("snmp.type"), a_set("fpc.snmp.pdu_type"),
          ("fpc.snmp.pdu_type",)),
        s("snmp.variable", APP, a_set("snmp.variable"), a_set("fpc.snmp.oid"),
          ("fpc.snmp.oid",)),
        s("snmp.error", APP, a_set("snmp.error"), a_set("fpc.snmp.error_status"),
          ("fpc.snmp.error_status",)),
        s("snmp.engineId", APP, a_set("snmp.engineId", lower),
          a_set("fpc.snmp.engine_id", lower), ("fpc.snmp.engine_id",)),
        s("snmp.secLevel", APP, a_set("snmp.secLevel"),
          a_set("fpc.snmp.security_level"), ("fpc.snmp.security_level",)),
        s("ntp.version", APP, a_set("ntp.version", int),
          a_set("fpc.ntp.version", int), ("fpc.ntp.version",)),
        s("ntp.mode", APP, a_set("ntp.mode"), a_set("fpc.ntp.mode"),
          ("fpc.ntp.mode",)),
        s("ntp.stratum", APP, a_set("ntp.stratum"),
          a_set("fpc.ntp.stratum", ntp_stratum), ("fpc.ntp.stratum",)),
        s("ntp.refId", APP, a_set("ntp.refId", lower),
          a_set("fpc.ntp.reference_id", lower), ("fpc.ntp.reference_id",)),
        *same_rows("mysql", ("version", "user")),
        s("postgresql.user", APP, a_set("postgresql.user"),
          a_set("fpc.postgresql.user"), ("fpc.postgresql.user",)),
        s("postgresql.db", APP, a_set("postgresql.db"),
          a_set("fpc.postgresql.database"), ("fpc.postgresql.database",)),
        s("postgresql.app", APP, a_set("postgresql.app"),
          a_set("fpc.postgresql.application_name"),
          ("fpc.postgresql.application_name",)),
        s("radius.msgType", APP, a_set("radius.msgType"),
          a_set("fpc.radius.message_type"), ("fpc.radius.message_type",)),
        s("radius.user", APP, a_set("radius.user"), a_set("fpc.radius.user"),
          ("fpc.radius.user",)),
        s("radius.nasIp", APP, a_set("radius.nasIp", norm_ip),
          a_set("fpc.radius.nas_ip", norm_ip), ("fpc.radius.nas_ip",)),
        s("radius.nasPort", APP, a_set("radius.nasPort", int),
          a_set("fpc.radius.nas_port", int), ("fpc.radius.nas_port",)),
        s("radius.framedIp", APP, a_set("radius.framedIp", norm_ip),
          a_set("fpc.radius.framed_ip", norm_ip), ("fpc.radius.framed_ip",)),
        s("radius.mac", APP, a_set("radius.mac", norm_mac),
          a_set("fpc.radius.mac", norm_mac), ("fpc.radius.mac",)),
        *same_rows("irc", ("nick", "channel")),
        *same_rows("mqtt", ("version", "topic")),
        *same_rows("bacnet", ("function", "service")),
        *same_rows("adb", ("command", "version", "serial", "service")),
        s("adb.maxpayload", APP, a_set("adb.maxpayload", int),
          a_set("fpc.adb.max_payload", int), ("fpc.adb.max_payload",)),
        s("adb.systemtype", APP, a_set("adb.systemtype"),
          a_set("fpc.adb.system_type"), ("fpc.adb.system_type",)),
        s("adb.authtype", APP, a_set("adb.authtype"), a_set("fpc.adb.auth_type"),
          ("fpc.adb.auth_type",)),
        s("dnp3.src", APP, a_set("dnp3.src", int), a_set("fpc.dnp3.src", int),
          ("fpc.dnp3.src",)),
        s("dnp3.dst", APP, a_set("dnp3.dst", int), a_set("fpc.dnp3.dst", int),
          ("fpc.dnp3.dst",)),
        s("dnp3.func", APP, a_set("dnp3.func", int),
          a_set("fpc.dnp3.function_code", int), ("fpc.dnp3.function_code",)),
        s("dnp3.funcName", APP, a_set("dnp3.funcName"), a_set("fpc.dnp3.function"),
          ("fpc.dnp3.function",)),
        s("bacnet.apduType", APP, a_set("bacnet.apduType"),
          a_set("fpc.bacnet.apdu_type"), ("fpc.bacnet.apdu_type",)),
        s("mqtt.type", APP, a_set("mqtt.type"), a_set("fpc.mqtt.message_type"),
          ("fpc.mqtt.message_type",)),
        s("mqtt.clientId", APP, a_set("mqtt.clientId"), a_set("fpc.mqtt.client_id"),
          ("fpc.mqtt.client_id",)),
        s("mqtt.willTopic", APP, a_set("mqtt.willTopic"),
          a_set("fpc.mqtt.will_topic"), ("fpc.mqtt.will_topic",)),
        s("mqtt.connackCode", APP, a_set("mqtt.connackCode", int),
          a_set("fpc.mqtt.connack_code", int), ("fpc.mqtt.connack_code",)),
        s("stun.type", APP, a_set("stun.type"), a_set("fpc.stun.message_type"),
          ("fpc.stun.message_type",)),
        s("stun.username", APP, a_set("stun.username"), a_set("fpc.stun.user"),
          ("fpc.stun.user",)),
        s("stun.realm", APP, a_set("stun.realm"), a_set("fpc.stun.realm"),
          ("fpc.stun.realm",)),
        s("stun.error", APP, a_set("stun.error", int),
          a_set("fpc.stun.error_code", int), ("fpc.stun.error_code",)),
        *stun_address_rows(),
        s("rdp.requestedProtocols", APP, a_set("rdp.requestedProtocols"),
          a_set("fpc.rdp.requested_protocols"), ("fpc.rdp.requested_protocols",)),
        s("rdp.selectedProtocol", APP, a_set("rdp.selectedProtocol"),
          a_set("fpc.rdp.selected_protocol"), ("fpc.rdp.selected_protocol",)),
        s("http.md5", APP, a_set("http.md5"), a_set("fpc.http.body.md5"),
          ("fpc.http.body.md5",)),
        s("http.sha256", APP, a_set("http.sha256"), a_set("fpc.http.body.sha256"),
          ("fpc.http.body.sha256",)),
        s("http.version", APP,
          a_union("http.clientVersion", "http.serverVersion", norm=http_version),
          a_set("http.version", http_version), ("http.version",)),
        s("http.authType", APP, a_set("http.authType", lower),
          a_set("fpc.http.auth_type", lower), ("fpc.http.auth_type",)),
        s("http.user", APP, a_set("http.user"), a_set("fpc.http.user"),
          ("fpc.http.user",)),
        s("dns.opcode", APP, dns_objects("opcode"), a_set("dns.op_code"),
          ("dns.op_code",)),
        s("dns.headerFlags", APP, dns_objects("headerFlags"),
          a_set("dns.header_flags"), ("dns.header_flags",)),
        s("user", APP, a_set("user", lower), a_union(*USER_FIELDS, norm=lower),
          ("fpc.ntlm.user",)),
    ]  # fmt: skip


def fpc_krb5_etypes(doc: Record) -> object:
    """fpc's encryption types less those without a name (Arkime drops them)."""
    names = value_set(get_path(doc, "fpc.krb5.etype"))
    return frozenset(n for n in names if not is_number(n.lstrip("-")))


def stun_address_rows() -> list[FieldSpec]:
    """Arkime keeps the IPs and ports of XOR-coded addresses apart; fpc keeps
    'ip:port' (IPv6 in brackets)."""
    rows = []
    for arkime, ours in (("Mapped", "mapped"), ("Relayed", "relayed"),
                         ("Peer", "peer")):  # fmt: skip
        field = f"fpc.stun.{ours}_address"
        for part, norm in (("Ip", norm_ip), ("Port", int)):
            name = f"stun.xor{arkime}{part}"
            ours_get = a_set(field, address_part(part == "Port", norm))
            rows.append(FieldSpec(name, APP, a_set(name, norm), ours_get, (field,)))
    return rows


def address_part(port: bool, norm: Callable[[Any], object]) -> Callable[[Any], object]:
    def get(value: object) -> object:
        host, _, number = str(value).rpartition(":")
        return norm(number) if port else norm(host.strip("[]"))

    return get


def dns_objects(key: str) -> Getter:
    return arkime_objects("dns", key)


def same_rows(protocol: str, keys: tuple[str, ...]) -> list[FieldSpec]:
    """Rows where Arkime's `protocol.key` is fpc's `fpc.protocol.key`."""
    return [
        FieldSpec(f"{protocol}.{k}", APP, a_set(f"{protocol}.{k}"),
                  a_set(f"fpc.{protocol}.{k}"), (f"fpc.{protocol}.{k}",))
        for k in keys
    ]  # fmt: skip


def is_quic(arkime: Record, ours: Record) -> bool:
    return "quic" in as_list(arkime.get("protocol")) or "quic" in as_list(
        get_path(ours, "fpc.protocols")
    )
