"""Fields the application-layer parsers add to SPI records (see fpc.fields)."""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    name: str
    es_type: str  # "ip", "keyword", "date_nanos", "long", "integer", ...
    doc: str
    indexed: bool = True  # False: stored in the record, not searchable


APP_FIELDS: tuple[Field, ...] = (
    Field("http.request.method", "keyword", "HTTP request methods."),
    Field("url.domain", "keyword", "HTTP Host header values."),
    Field("url.path", "keyword", "HTTP request paths, without the query."),
    Field("url.query", "keyword", "HTTP request query strings, without the '?'."),
    Field("http.response.status_code", "integer", "HTTP response status codes."),
    Field("http.version", "keyword", "HTTP versions of requests and responses."),
    Field("user_agent.original", "keyword", "HTTP User-Agent header values."),
    Field("dns.question.name", "keyword", "DNS query names."),
    Field("dns.question.type", "keyword", "DNS query types (A, AAAA, ...)."),
    Field(
        "dns.response_code", "keyword", "DNS response codes (NOERROR, NXDOMAIN, ...)."
    ),
    Field("dns.op_code", "keyword", "DNS operation codes (QUERY, UPDATE, ...)."),
    Field("dns.header_flags", "keyword", "DNS header flags set (AA, TC, RD, ...)."),
    Field("dns.answers.data", "keyword", "DNS answer data (addresses, names)."),
    Field("dns.resolved_ip", "ip", "Addresses from DNS A/AAAA answers."),
    Field("tls.version", "keyword", "Negotiated TLS version, e.g. '1.2'."),
    Field(
        "tls.version_protocol", "keyword", "Protocol of tls.version: 'tls' or 'ssl'."
    ),
    Field("tls.client.server_name", "keyword", "TLS SNI."),
    Field("tls.client.ja3", "keyword", "JA3 hash of the ClientHello."),
    Field("tls.server.ja3s", "keyword", "JA3S hash of the ServerHello."),
    Field("tls.cipher", "keyword", "Negotiated cipher suite."),
    Field("tls.next_protocol", "keyword", "ALPN protocol the server chose (h2, ...)."),
    Field("fpc.socks.host", "keyword", "Destination a SOCKS client asked for."),
    Field("fpc.socks.port", "integer", "Destination port a SOCKS client asked for."),
    Field("fpc.ssh.client", "keyword", "SSH version banner of the client."),
    Field("fpc.ssh.server", "keyword", "SSH version banner of the server."),
)
