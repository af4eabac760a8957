"""Fields the application-layer parsers add to SPI records (see fpc.fields)."""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    name: str
    es_type: str  # "ip", "keyword", "date_nanos", "long", "integer", ...
    doc: str
    indexed: bool = True  # False: stored in the record, not searchable


# Every certificate the server sent in clear (TLS 1.2 and older), leaf first,
# at most fpc.appl.tls.MAX_CERTIFICATES.
_CERTS = "Of each certificate a TLS (<= 1.2) or DTLS server sent, leaf first."

APP_FIELDS: tuple[Field, ...] = (
    Field(
        "related.ip",
        "ip",
        "Every address of the session: source.ip, destination.ip and those its "
        "messages name for its hosts (a DHCP client's current and assigned "
        "addresses and the server's identifier; the addresses a DHCPv6 server "
        "assigns), which a DHCP exchange reported under its first packet's "
        "endpoints is found by.",
    ),
    Field("http.request.method", "keyword", "HTTP request methods."),
    Field("url.domain", "keyword", "HTTP Host header values."),
    Field("url.path", "keyword", "HTTP request paths, without the query."),
    Field("url.query", "keyword", "HTTP request query strings, without the '?'."),
    Field(
        "fpc.http.connect_target",
        "keyword",
        "host:port of HTTP CONNECT requests (the tunnel a proxy was asked for).",
    ),
    Field("http.response.status_code", "integer", "HTTP response status codes."),
    Field("http.version", "keyword", "HTTP versions of requests and responses."),
    Field(
        "http.request.mime_type",
        "keyword",
        "Media types of request Content-Type headers, lowercase, no parameters "
        "(ECS would sniff the body; fpc takes the header).",
    ),
    Field(
        "http.response.mime_type",
        "keyword",
        "Media types of response Content-Type headers, lowercase, no parameters "
        "(ECS would sniff the body; fpc takes the header).",
    ),
    Field(
        "fpc.http.auth_type",
        "keyword",
        "Schemes of HTTP Authorization headers (basic, ntlm, negotiate, ...).",
    ),
    Field("fpc.http.user", "keyword", "User names of HTTP Basic authorization."),
    Field(
        "fpc.http.body.md5",
        "keyword",
        "MD5 of each non-empty HTTP body as sent (chunked framing removed, "
        "content coding kept), when the parsers saw all of it: each direction's "
        "payload is offered up to `app_bytes` (64 KiB, retransmissions "
        "included; the packet crossing that line whole). A body that ends past "
        "it, or is cut by a reset, a close or a lost segment, has no hash.",
    ),
    Field(
        "fpc.http.body.sha256",
        "keyword",
        "SHA-256 of each non-empty HTTP body seen whole, as fpc.http.body.md5.",
    ),
    Field("user_agent.original", "keyword", "HTTP User-Agent header values."),
    Field("dns.question.name", "keyword", "DNS query names."),
    Field("dns.question.type", "keyword", "DNS query types (A, AAAA, ...)."),
    Field(
        "dns.response_code", "keyword", "DNS response codes (NOERROR, NXDOMAIN, ...)."
    ),
    Field("dns.op_code", "keyword", "DNS operation codes (QUERY, UPDATE, ...)."),
    Field(
        "dns.header_flags",
        "keyword",
        "DNS header flags set in responses (AA, TC, RD, RA, AD, CD).",
    ),
    Field(
        "dns.answers.data",
        "keyword",
        "Data of DNS answer-section records: addresses, names (CNAME, NS, PTR, "
        "MX, DNAME), TXT text, CAA as 'flags tag value'.",
    ),
    Field(
        "fpc.dns.authority.data",
        "keyword",
        "Data of DNS authority-section records, as dns.answers.data.",
    ),
    Field(
        "fpc.dns.additional.data",
        "keyword",
        "Data of DNS additional-section records (glue), as dns.answers.data.",
    ),
    Field("fpc.dns.ptr", "keyword", "Names of PTR records (reverse lookups' results)."),
    Field(
        "dns.resolved_ip",
        "ip",
        "Addresses of A/AAAA answers for a question's name or a CNAME on its chain.",
    ),
    Field("tls.version", "keyword", "Negotiated TLS version, e.g. '1.2'."),
    Field(
        "tls.version_protocol", "keyword", "Protocol of tls.version: 'tls' or 'ssl'."
    ),
    Field("tls.client.server_name", "keyword", "TLS SNI."),
    Field("tls.client.ja3", "keyword", "JA3 hash of the ClientHello."),
    Field(
        "tls.client.ja4",
        "keyword",
        "JA4 fingerprints of ClientHellos (t: TLS over TCP; q: QUIC or TLS over "
        "UDP, e.g. OpenVPN; d: DTLS).",
    ),
    Field(
        "fpc.tls.alpn_offered",
        "keyword",
        "ALPN protocols the ClientHello offered (h2, http/1.1, h3, ...).",
    ),
    Field("tls.server.ja3s", "keyword", "JA3S hash of the ServerHello."),
    Field("tls.cipher", "keyword", "Negotiated cipher suite."),
    Field("tls.next_protocol", "keyword", "ALPN protocol the server chose (h2, ...)."),
    *(
        Field(f"tls.server.x509.{part}", es_type, f"{doc} {_CERTS}")
        for part, es_type, doc in (
            ("subject.common_name", "keyword", "Subject CNs."),
            ("subject.organization", "keyword", "Subject organizations (O)."),
            ("issuer.common_name", "keyword", "Issuer CNs."),
            ("issuer.organization", "keyword", "Issuer organizations (O)."),
            ("serial_number", "keyword", "Serial numbers, upper-case hex of DER."),
            ("not_before", "date", "Start of validity."),
            ("not_after", "date", "End of validity."),
            ("alternative_names", "keyword", "DNS names and IPs of the SAN."),
            ("public_key_algorithm", "keyword", "Key algorithm (RSA, ECDSA, ...)."),
        )
    ),
    Field("tls.server.hash.sha1", "keyword", f"SHA-1 of the DER, upper hex. {_CERTS}"),
    Field(
        "fpc.quic.version",
        "keyword",
        "QUIC versions of the client's long-header packets: '1', '2', 'draft-29', "
        "'Q043' (Google QUIC), else the number in hex.",
    ),
    Field("fpc.quic.user_agent", "keyword", "UAID tag of a Google QUIC client hello."),
    Field(
        "fpc.dhcp.message_type",
        "keyword",
        "DHCP and DHCPv6 message types (DISCOVER, ACK, SOLICIT, REPLY, ...).",
    ),
    Field(
        "fpc.dhcp.transaction_id",
        "keyword",
        "DHCP xid / DHCPv6 transaction id, lowercase hex without leading zeros.",
    ),
    Field("fpc.dhcp.client_mac", "keyword", "DHCP client hardware address (chaddr)."),
    Field(
        "fpc.dhcp.host_name",
        "keyword",
        "DHCP Host Name option (12) / DHCPv6 Client FQDN option (39).",
    ),
    Field("fpc.dhcp.vendor_class", "keyword", "DHCP Vendor Class Identifier (60)."),
    Field("fpc.dhcp.requested_ip", "ip", "DHCP Requested IP Address option (50)."),
    Field(
        "fpc.dhcp.assigned_ip",
        "ip",
        "Address a DHCP server offered or assigned (yiaddr; DHCPv6 IA Address).",
    ),
    Field("fpc.smtp.helo", "keyword", "Names SMTP clients gave in HELO/EHLO."),
    Field("fpc.smtp.mail_from", "keyword", "SMTP envelope senders (MAIL FROM)."),
    Field("fpc.smtp.rcpt_to", "keyword", "SMTP envelope recipients (RCPT TO)."),
    Field("fpc.smtp.user", "keyword", "SMTP AUTH PLAIN and LOGIN user names."),
    Field(
        "fpc.smtp.starttls",
        "boolean",
        "True when the SMTP server accepted STARTTLS (TLS fields follow).",
    ),
    Field("email.from.address", "keyword", "Addresses of From header fields."),
    Field("email.to.address", "keyword", "Addresses of To header fields."),
    Field("email.cc.address", "keyword", "Addresses of Cc header fields."),
    Field("email.reply_to.address", "keyword", "Addresses of Reply-To fields."),
    Field("email.sender.address", "keyword", "Addresses of Sender header fields."),
    Field("email.subject", "keyword", "Subjects, RFC 2047 encoded words decoded."),
    Field("email.message_id", "keyword", "Message-ID values, without '<>'."),
    Field("email.x_mailer", "keyword", "X-Mailer and User-Agent header values."),
    Field("email.content_type", "keyword", "Content-Type header of each message."),
    Field("fpc.ntp.version", "integer", "NTP versions (1 to 4)."),
    Field("fpc.ntp.mode", "keyword", "NTP modes (client, server, broadcast, ...)."),
    Field("fpc.ntp.stratum", "integer", "NTP strata (0 unspecified, 1 primary)."),
    Field(
        "fpc.ntp.reference_id",
        "keyword",
        "NTP reference ids: text at stratum 0-1 (kiss code, source), else hex.",
    ),
    Field("fpc.snmp.version", "integer", "SNMP versions: 1, 2 (v2c), 3."),
    Field("fpc.snmp.community", "keyword", "SNMP v1/v2c community strings."),
    Field("fpc.snmp.pdu_type", "keyword", "SNMP PDU types (GetRequest, ...)."),
    Field("fpc.snmp.oid", "keyword", "OIDs of SNMP variable bindings."),
    Field("fpc.snmp.error_status", "keyword", "Non-zero SNMP error statuses."),
    Field("fpc.snmp.engine_id", "keyword", "SNMPv3 authoritative engine ids, hex."),
    Field("fpc.snmp.user", "keyword", "SNMPv3 USM user names."),
    Field(
        "fpc.snmp.security_level",
        "keyword",
        "SNMPv3 security levels (noAuthNoPriv, authNoPriv, authPriv).",
    ),
    Field("fpc.mysql.version", "keyword", "MySQL server versions (greeting)."),
    Field("fpc.mysql.user", "keyword", "MySQL login user names."),
    Field("fpc.postgresql.user", "keyword", "PostgreSQL startup user names."),
    Field("fpc.postgresql.database", "keyword", "PostgreSQL startup databases."),
    Field(
        "fpc.postgresql.application_name",
        "keyword",
        "PostgreSQL startup application_name values.",
    ),
    Field("fpc.smb.version", "integer", "SMB versions seen: 1, or 2 (SMB2 and 3)."),
    Field(
        "fpc.ntlm.type",
        "integer",
        "NTLMSSP message types seen (1 negotiate, 2 challenge, 3 authenticate), "
        "in SMB, HTTP, SMTP or LDAP.",
    ),
    Field("fpc.ntlm.user", "keyword", "NTLM user names (AUTHENTICATE)."),
    Field("fpc.ntlm.domain", "keyword", "NTLM domains (AUTHENTICATE, NEGOTIATE)."),
    Field("fpc.ntlm.host", "keyword", "NTLM workstations (AUTHENTICATE, NEGOTIATE)."),
    Field("fpc.ntlm.target_name", "keyword", "NTLM target names (CHALLENGE)."),
    Field(
        "fpc.ntlm.version", "keyword", "OS versions NTLM messages state (10.0.19041)."
    ),
    Field("fpc.ldap.bind_dn", "keyword", "DNs of LDAP bind requests (non-empty)."),
    Field(
        "fpc.ldap.auth_type",
        "keyword",
        "LDAP bind methods: anonymous (empty password), simple, sasl, ntlm.",
    ),
    Field("fpc.ldap.sasl_mechanism", "keyword", "SASL mechanisms of LDAP binds."),
    Field("fpc.ldap.search_base", "keyword", "Base DNs of LDAP search requests."),
    Field(
        "fpc.krb5.msg_type",
        "keyword",
        "Kerberos message types (AS-REQ, AS-REP, TGS-REQ, TGS-REP, KRB-ERROR).",
    ),
    Field("fpc.krb5.realm", "keyword", "Kerberos realms of requests and replies."),
    Field("fpc.krb5.cname", "keyword", "Kerberos client principals ('/'-joined)."),
    Field("fpc.krb5.sname", "keyword", "Kerberos service principals ('/'-joined)."),
    Field("fpc.krb5.etype", "keyword", "Encryption types Kerberos clients offer."),
    Field("fpc.krb5.error", "keyword", "Kerberos KRB-ERROR codes (names)."),
    Field("fpc.rdp.cookie", "keyword", "RDP mstshash cookies (a user name)."),
    Field(
        "fpc.rdp.requested_protocols",
        "keyword",
        "Security protocols RDP clients ask for (rdp, tls, hybrid, ...).",
    ),
    Field(
        "fpc.rdp.selected_protocol",
        "keyword",
        "Security protocol the RDP server picks.",
    ),
    Field("fpc.irc.nick", "keyword", "Nicknames IRC clients took (NICK)."),
    Field("fpc.irc.channel", "keyword", "Channels IRC clients joined (JOIN)."),
    Field(
        "fpc.radius.message_type",
        "keyword",
        "RADIUS message types (access-request, accounting-response, ...).",
    ),
    Field("fpc.radius.user", "keyword", "RADIUS User-Name values."),
    Field("fpc.radius.nas_ip", "ip", "RADIUS NAS-IP-Address values."),
    Field("fpc.radius.nas_port", "long", "RADIUS NAS-Port values."),
    Field("fpc.radius.framed_ip", "ip", "RADIUS Framed-IP-Address values."),
    Field(
        "fpc.radius.calling_station_id",
        "keyword",
        "RADIUS Calling-Station-Id values (often the client's MAC address).",
    ),
    Field(
        "fpc.radius.mac",
        "keyword",
        "Calling-Station-Id values that are MAC addresses, as aa:bb:cc:dd:ee:ff.",
    ),
    Field("fpc.pop3.user", "keyword", "POP3 user names (USER, APOP)."),
    Field("fpc.imap.user", "keyword", "IMAP user names (LOGIN)."),
    Field("fpc.imap.mailbox", "keyword", "IMAP mailboxes selected or examined."),
    Field("fpc.tds.user", "keyword", "TDS (SQL Server, Sybase) login user names."),
    Field("fpc.tds.client_host", "keyword", "TDS login client host names."),
    Field("fpc.tds.application", "keyword", "TDS LOGIN7 application names."),
    Field("fpc.tds.server", "keyword", "TDS LOGIN7 server names."),
    Field("fpc.tds.database", "keyword", "TDS LOGIN7 databases."),
    Field(
        "fpc.stun.message_type",
        "keyword",
        "STUN/TURN message types ('Binding Request', 'Allocate Error', ...).",
    ),
    Field("fpc.stun.user", "keyword", "STUN USERNAME values."),
    Field("fpc.stun.realm", "keyword", "STUN REALM values."),
    Field("fpc.stun.software", "keyword", "STUN SOFTWARE values."),
    Field("fpc.stun.error_code", "integer", "STUN ERROR-CODE values (401, ...)."),
    Field("fpc.stun.mapped_address", "keyword", "XOR-MAPPED-ADDRESS values, ip:port."),
    Field("fpc.stun.relayed_address", "keyword", "TURN XOR-RELAYED-ADDRESS, ip:port."),
    Field("fpc.stun.peer_address", "keyword", "TURN XOR-PEER-ADDRESS values, ip:port."),
    Field(
        "fpc.adb.command",
        "keyword",
        "Android Debug Bridge messages (cnxn, auth, open, wrte, ...), lowercase.",
    ),
    Field("fpc.adb.version", "keyword", "ADB protocol versions of CNXN, as 0x hex."),
    Field("fpc.adb.max_payload", "long", "ADB maximum message data sizes of CNXN."),
    Field(
        "fpc.adb.system_type",
        "keyword",
        "ADB system types of CNXN identities (host, device, ...).",
    ),
    Field("fpc.adb.serial", "keyword", "ADB serial numbers of CNXN identities."),
    Field(
        "fpc.adb.auth_type",
        "keyword",
        "ADB AUTH types (token, signature, rsapublickey).",
    ),
    Field(
        "fpc.adb.service",
        "keyword",
        "ADB services opened (shell, sync, forward, host, ...).",
    ),
    Field(
        "fpc.bacnet.function",
        "keyword",
        "BACnet/IP BVLC functions (original-unicast, forwarded-npdu, ...).",
    ),
    Field(
        "fpc.bacnet.apdu_type",
        "keyword",
        "BACnet APDU types (confirmed-request, unconfirmed-request, complex-ack, ...).",
    ),
    Field(
        "fpc.bacnet.service",
        "keyword",
        "BACnet services (who-is, i-am, read-property, ...).",
    ),
    Field("fpc.dnp3.src", "integer", "DNP3 link-layer source addresses."),
    Field("fpc.dnp3.dst", "integer", "DNP3 link-layer destination addresses."),
    Field("fpc.dnp3.function_code", "integer", "DNP3 application function codes."),
    Field(
        "fpc.dnp3.function",
        "keyword",
        "Names of the DNP3 function codes (Read, Write, Response, ...).",
    ),
    Field("fpc.syslog.facility", "keyword", "Syslog facilities (kern, auth, ...)."),
    Field("fpc.syslog.severity", "keyword", "Syslog severities (emerg ... debug)."),
    Field("fpc.syslog.hostname", "keyword", "HOSTNAME fields of syslog headers."),
    Field("fpc.mqtt.version", "keyword", "MQTT versions of CONNECT (3.1, 3.1.1, 5.0)."),
    Field(
        "fpc.mqtt.message_type",
        "keyword",
        "MQTT message types (CONNECT, PUBLISH, SUBSCRIBE, ...).",
    ),
    Field("fpc.mqtt.client_id", "keyword", "MQTT client identifiers (CONNECT)."),
    Field("fpc.mqtt.user", "keyword", "MQTT user names (CONNECT)."),
    Field("fpc.mqtt.will_topic", "keyword", "MQTT will topics (CONNECT)."),
    Field(
        "fpc.mqtt.topic",
        "keyword",
        "MQTT topics published to and topic filters subscribed or unsubscribed.",
    ),
    Field(
        "fpc.mqtt.connack_code",
        "integer",
        "MQTT CONNACK return codes (3.1.x) or reason codes (5.0); 0 accepts.",
    ),
    Field("fpc.socks.host", "keyword", "Destination a SOCKS client asked for."),
    Field("fpc.socks.port", "integer", "Destination port a SOCKS client asked for."),
    Field(
        "fpc.socks.user",
        "keyword",
        "SOCKS user names: the v4 USERID, the v5 user name (RFC 1929).",
    ),
    Field("fpc.ssh.client", "keyword", "SSH version banner of the client."),
    Field("fpc.ssh.server", "keyword", "SSH version banner of the server."),
    Field("fpc.ssh.hassh", "keyword", "HASSH of the client's SSH KEXINIT (MD5)."),
    Field(
        "fpc.ssh.hassh_server", "keyword", "HASSH of the server's SSH KEXINIT (MD5)."
    ),
)
