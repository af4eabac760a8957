"""SSH HASSH against Arkime's expected sessions, and damaged KEXINITs."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import new_app_state


@pytest.mark.parametrize("name", ["ssh2-moloch-crash", "gre-sample"])
def test_ssh_hassh_and_hassh_server_match_arkime(name: str) -> None:
    (body,) = arkime_sessions(name, "ssh")
    state = run_session(name, body)
    got = state.fields()
    assert state.errors == 0
    assert got["fpc.ssh.hassh"] == body["ssh"]["hassh"]
    assert got["fpc.ssh.hassh_server"] == body["ssh"]["hasshServer"]


def _name_list(text: str) -> bytes:
    return struct.pack("!I", len(text)) + text.encode()


def _kexinit_packet(lists: list[str]) -> bytes:
    payload = b"\x14" + bytes(16) + b"".join(map(_name_list, lists)) + bytes(5)
    padding = 8 - (len(payload) + 5) % 8 + 4
    body = bytes([padding]) + payload + bytes(padding)
    return struct.pack("!I", len(body)) + body


LISTS = [
    "curve25519-sha256,diffie-hellman-group14-sha256", "ssh-ed25519",
    "aes128-ctr,aes256-gcm@openssh.com", "aes256-ctr", "hmac-sha2-256", "hmac-sha1",
    "none,zlib@openssh.com", "none", "", "",
]  # fmt: skip


def test_ssh_hassh_is_md5_of_kex_enc_mac_comp_of_each_sides_direction() -> None:
    state = new_app_state("tcp", 50000, 22)
    state.feed(0, b"SSH-2.0-client\r\n" + _kexinit_packet(LISTS), 1000, 0x18)
    state.feed(1, b"SSH-2.0-server\r\n" + _kexinit_packet(LISTS), 5000, 0x18)
    client = "curve25519-sha256,diffie-hellman-group14-sha256;" + (
        "aes128-ctr,aes256-gcm@openssh.com;hmac-sha2-256;none,zlib@openssh.com"
    )
    server = "curve25519-sha256,diffie-hellman-group14-sha256;aes256-ctr;hmac-sha1;none"
    got = state.fields()
    assert got["fpc.ssh.hassh"] == [hashlib.md5(client.encode()).hexdigest()]
    assert got["fpc.ssh.hassh_server"] == [hashlib.md5(server.encode()).hexdigest()]
    assert not state.wants_more


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=400), flip=st.integers(0, 399))
def test_ssh_damaged_kexinit_keeps_the_banner(cut: int, flip: int) -> None:
    packet = bytearray(_kexinit_packet(LISTS))
    if flip < len(packet):
        packet[flip] ^= 0xFF
    state = new_app_state("tcp", 50000, 22)
    state.feed(0, b"SSH-2.0-client\r\n" + bytes(packet[:cut]), 1000, 0x18)
    assert state.fields()["fpc.ssh.client"] == ["SSH-2.0-client"]
    assert state.errors <= 1
