"""NTLM inside SMB, HTTP and SMTP against Arkime's sessions; HTTP Basic user.

Arkime's `ntlm.*` and top-level `user` are compared with fpc's `fpc.ntlm.*`.
Arkime reads only the AUTHENTICATE message in some SMB1 sessions where fpc
reads all three; there fpc's values must include Arkime's.
"""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state
from fpc.appl.ntlm import add_message, scan
from fpc.appl.sink import FieldSink


def _ntlm_cases() -> list[tuple[str, int]]:
    out = [
        ("ntlm_synthetic", b["source"]["port"])
        for b in arkime_sessions("ntlm_synthetic", "ntlm")
        if b["destination"]["port"] in (80, 25, 445, 135, 389)
    ]
    out += [("smb-smb1-ascii", 0), ("smbtorture-ntlmssp", 0),
            ("smbtorture-ntlmssp-moloch-crash", 0)]  # fmt: skip
    return out


@pytest.mark.parametrize(("name", "sport"), _ntlm_cases())
def test_ntlm_fields_match_arkime(name: str, sport: int) -> None:
    (body,) = [
        b
        for b in arkime_sessions(name, "ntlm")
        if not sport or b["source"]["port"] == sport
    ]
    state = run_session(name, body)
    got, want = state.fields(), body["ntlm"]
    assert state.errors == 0 and "ntlm" in body["protocol"]
    assert state.protocols()[-1] == "ntlm"
    assert {int(t) for t in want["type"]} <= set(got["fpc.ntlm.type"])
    assert set(want.get("domain", [])) <= set(got.get("fpc.ntlm.domain", []))
    assert set(want.get("host", [])) == set(got.get("fpc.ntlm.host", []))
    assert set(want.get("targetName", [])) <= set(got.get("fpc.ntlm.target_name", []))
    assert set(want.get("version", [])) <= set(got.get("fpc.ntlm.version", []))
    assert got.get("fpc.ntlm.user", []) == body.get("user", [])


def test_dcerpc_sessions_are_named_as_arkime_does() -> None:
    bodies = [b for b in arkime_sessions("ntlm_synthetic", "dcerpc")]
    assert len(bodies) == 2
    for body in bodies:
        state = run_session("ntlm_synthetic", body)
        # Arkime also names the interface (lsarpc); fpc reads no interfaces.
        assert state.protocols() == ["dcerpc", "ntlm"] and state.errors == 0


def test_dcerpc_bind_off_port_needs_a_whole_pdu() -> None:
    bind = bytes.fromhex("05000b0310000000") + (20).to_bytes(2, "little") + bytes(10)
    for data, want in ((bind, ["dcerpc"]), (bind[:14] + b"\xff\x00", [])):
        state = new_app_state("tcp", 40000, 49700)
        state.feed(0, b"", 1, 0x02)
        state.feed(0, data, 2, 0)
        assert state.protocols() == want


def test_http_basic_user_and_scheme_match_arkime() -> None:
    (body,) = arkime_sessions("http-basicauth", "http")
    got = run_session("http-basicauth", body).fields()
    assert got["fpc.http.auth_type"] == body["http"]["authType"]
    assert got["fpc.http.user"] == body["http"]["user"]


def _authenticate(user: str, domain: str, host: str) -> bytes:
    """An AUTHENTICATE message built from MS-NLMP 2.2.1.3, Unicode names."""
    names = [n.encode("utf-16-le") for n in (domain, user, host)]
    offset = 72
    fields = struct.pack("<HHI", 0, 0, offset) * 2  # empty LM and NT responses
    payload = b""
    for raw in names:
        fields += struct.pack("<HHI", len(raw), len(raw), offset + len(payload))
        payload += raw
    fields += struct.pack("<HHI", 0, 0, offset + len(payload))  # session key
    head = b"NTLMSSP\x00" + struct.pack("<I", 3) + fields + struct.pack("<I", 1)
    return head + bytes(offset - len(head)) + payload


def test_ntlm_authenticate_in_smtp_auth_lines() -> None:
    token = base64.b64encode(_authenticate("ann", "DOM", "PC1"))
    state = new_app_state("tcp", 40000, 25)
    state.feed(1, b"220 mx ESMTP\r\n", 5000, 0x18)
    state.feed(0, b"EHLO pc1\r\nAUTH NTLM\r\n", 1000, 0x18)
    state.feed(1, b"250 ok\r\n334 \r\n", 5014, 0x18)
    state.feed(0, token + b"\r\n", 1021, 0x18)
    got = state.fields()
    assert got["fpc.ntlm.user"] == ["ann"]
    assert got["fpc.ntlm.domain"] == ["DOM"] and got["fpc.ntlm.host"] == ["PC1"]


def test_ntlm_damaged_field_leaves_the_others_readable() -> None:
    # The AUTHENTICATE of smbtorture-ntlmssp-moloch-crash: its LM, NT and
    # domain fields say 65535 bytes at offsets past the end; user and
    # workstation are intact.
    (body,) = arkime_sessions("smbtorture-ntlmssp-moloch-crash", "ntlm")
    packets = session_packets("smbtorture-ntlmssp-moloch-crash", body)
    [blob] = [p[p.find(b"NTLMSSP\x00\x03") :] for _, p, _, _ in packets
              if b"NTLMSSP\x00\x03" in p]  # fmt: skip
    assert struct.unpack_from("<HHI", blob, 28) == (0xFFFF, 0xFFFF, 0xFFFFFFFF)
    sink = FieldSink()
    add_message(sink, blob)
    assert sink.as_dict() == {
        "fpc.ntlm.type": [3],
        "fpc.ntlm.user": ["administrator"],
        "fpc.ntlm.host": ["BLU"],
    }


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(min_value=0, max_value=120), flip=st.integers(0, 119))
def test_ntlm_damaged_message_raises_only_parse_errors(cut: int, flip: int) -> None:
    blob = bytearray(_authenticate("ann", "DOM", "PC1"))
    if flip < len(blob):
        blob[flip] ^= 0xFF
    sink = FieldSink()
    try:
        add_message(sink, bytes(blob[:cut]))
    except ValueError:  # ParseError: counted by the parser that called it
        pass
    assert len(sink.as_dict().get("fpc.ntlm.user", [])) <= 1
    assert scan(FieldSink(), b"no signature here") == 0
