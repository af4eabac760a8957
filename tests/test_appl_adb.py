"""Android Debug Bridge against Arkime's sessions of adb_synthetic: the
device transport on 5555 (AUTH, shell v2, sync, forwards, STLS to TLS) and a
smart socket request to the host server on 5037."""

from __future__ import annotations

import pytest
from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import new_app_state

# The client's CNXN of adb_synthetic: version 0x01000001, max data 256 KiB.
CNXN = bytes.fromhex("434e584e01000001000004000700000032020000bcb1a7b1") + b"host::\x00"
ROWS = {"command": "command", "version": "version", "serial": "serial",
        "service": "service", "systemtype": "system_type",
        "authtype": "auth_type"}  # fmt: skip


@pytest.mark.parametrize("sport", range(40001, 40008))
def test_adb_fields_match_arkime(sport: int) -> None:
    (body,) = [b for b in arkime_sessions("adb_synthetic", "adb")
               if b["source"]["port"] == sport]  # fmt: skip
    state = run_session("adb_synthetic", body)
    got, want = state.fields(), body["adb"]
    assert state.errors == 0
    assert set(state.protocols()) == set(body["protocol"]) - {"tcp"}
    for arkime, ours in ROWS.items():
        assert set(got.get(f"fpc.adb.{ours}", [])) == set(want.get(arkime, [])), ours
    payloads = {int(m) for m in want.get("maxpayload", [])}
    assert set(got.get("fpc.adb.max_payload", [])) == payloads


def test_adb_stls_hands_the_session_to_tls() -> None:
    (body,) = [b for b in arkime_sessions("adb_synthetic", "tls")]
    state = run_session("adb_synthetic", body)
    assert state.protocols() == ["adb", "tls"]
    assert state.fields()["tls.client.server_name"] == ["adb-device.local"]


def test_adb_header_with_a_wrong_magic_is_not_adb() -> None:
    broken = CNXN[:20] + b"\x00\x00\x00\x00" + CNXN[24:]
    for data, want in ((CNXN, ["adb"]), (broken, [])):
        state = new_app_state("tcp", 40000, 40001)
        state.feed(0, data, 1, 0)
        assert state.protocols() == want
