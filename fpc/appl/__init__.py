"""Application-layer parsers (HTTP, DNS, TLS, SSH, ...), one module per protocol.

The session table creates one `AppState` per session with `new_app_state`
and feeds it every packet; see `fpc.appl.state`. Importing this package
registers every parser module listed below.
"""

from __future__ import annotations

# Each parser module registers itself when imported.
from fpc.appl import (  # noqa: F401
    adb,
    bacnet,
    dcerpc,
    dhcp,
    dhcpv6,
    dnp3,
    dns,
    dtls,
    http,
    http2,
    imap,
    irc,
    krb5,
    ldap,
    mongo,
    mqtt,
    mysql,
    ntp,
    openvpn,
    pop3,
    postgresql,
    quic,
    radius,
    rdp,
    smb,
    smtp,
    snmp,
    socks,
    ssh,
    stun,
    syslog,
    tds,
    telnet,
    tls,
)
from fpc.appl.registry import registered_names
from fpc.appl.state import AppState

__all__ = ["AppState", "new_app_state", "registered_names"]


def new_app_state(
    transport: str, sport: int, dport: int, tried: int = 0, reach: int = 0
) -> AppState:
    """App-layer state of a new session; sport is the client's port; `tried`
    datagrams were classified by a parked state of it already; `reach` is the
    payload the session table offers per direction (0: unlimited)."""
    return AppState(transport, sport, dport, tried, reach)
