"""DNP3 against Arkime's sessions of dnp3_synthetic (TCP and UDP, a frame
without user data first in one), and the link header CRC."""

from __future__ import annotations

import pytest
from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import new_app_state
from fpc.appl.dnp3 import crc_dnp

# The first request of dnp3_synthetic: Read from master 2 to outstation 1.
READ = bytes.fromhex("05640bc401000200699ec0c1013c020652c3")


@pytest.mark.parametrize("sport", [12345, 54321, 33100])
def test_dnp3_fields_match_arkime(sport: int) -> None:
    (body,) = [b for b in arkime_sessions("dnp3_synthetic", "dnp3")
               if b["source"]["port"] == sport]  # fmt: skip
    state = run_session("dnp3_synthetic", body)
    got, want = state.fields(), body["dnp3"]
    assert state.protocols() == ["dnp3"] and state.errors == 0
    assert set(got["fpc.dnp3.src"]) == {int(a) for a in want["src"]}
    assert set(got["fpc.dnp3.dst"]) == {int(a) for a in want["dst"]}
    assert set(got["fpc.dnp3.function_code"]) == {int(f) for f in want["func"]}
    assert set(got["fpc.dnp3.function"]) == set(want["funcName"])


def test_dnp3_header_crc_is_crc16_dnp() -> None:
    assert crc_dnp(READ[:8]) == int.from_bytes(READ[8:10], "little")
    assert crc_dnp(READ[10:16]) == int.from_bytes(READ[16:18], "little")


def test_dnp3_off_port_needs_a_valid_header_crc() -> None:
    broken = READ[:8] + b"\x00\x00" + READ[10:]
    for data, want in ((READ, ["dnp3"]), (broken, [])):
        state = new_app_state("tcp", 40000, 40001)
        state.feed(0, data, 1, 0)
        assert state.protocols() == want
