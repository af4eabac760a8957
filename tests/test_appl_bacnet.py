"""BACnet/IP against Arkime's sessions of bacnet-stack-services, and BVLC and
NPDU variants laid out as ASHRAE 135 Annex J and clause 6 describe them."""

from __future__ import annotations

import json
from collections import defaultdict

from test_appl_corpus import CORPUS, run_session

from fpc.appl import new_app_state

# A ReadProperty request of bacnet-stack-services (to DNET 0xFFFF, with a
# hop count; confirmed, invoke id 1).
READ_PROPERTY = bytes.fromhex("810a00160124000d013dff0003010c0c0200003d1957")
# A datagram of the same capture whose BVLC header is followed by no NPDU.
NO_NPDU = bytes.fromhex("810a000b10072c0200003d")


def _arkime_by_address_pair(name: str) -> dict[tuple, tuple[dict, dict]]:
    """Arkime splits these sessions at idle gaps where fpc does too, but not
    at the same ones: its values are joined per address pair."""
    doc = json.loads((CORPUS / f"{name}.test").read_text())
    out: dict[tuple, tuple[dict, dict]] = {}
    for s in doc["sessions3"]:
        body = s["body"]
        ends = [(body[side].get("ip"), body[side].get("port"))
                for side in ("source", "destination")]  # fmt: skip
        if None in ends[0]:
            continue
        first, values = out.setdefault(tuple(sorted(ends)), (body, defaultdict(set)))
        for key, got in body.get("bacnet", {}).items():
            if not key.endswith("Cnt"):
                values[key] |= set(got)
    return out


def test_bacnet_fields_match_arkime_per_address_pair() -> None:
    pairs = _arkime_by_address_pair("bacnet-stack-services")
    assert len(pairs) == 3
    for body, want in pairs.values():
        state = run_session("bacnet-stack-services", body)
        got = state.fields()
        assert state.protocols() == ["bacnet"] and state.errors == 0
        assert set(got["fpc.bacnet.function"]) == want["function"]
        assert set(got["fpc.bacnet.apdu_type"]) == want["apduType"]
        assert set(got["fpc.bacnet.service"]) == want["service"]


def test_bacnet_confirmed_request_off_port_names_its_service() -> None:
    state = new_app_state("udp", 47809, 40000)
    state.feed(0, READ_PROPERTY, None, 0)
    fields = state.fields()
    assert state.protocols() == ["bacnet"] and state.errors == 0
    assert fields["fpc.bacnet.apdu_type"] == ["confirmed-request"]
    assert fields["fpc.bacnet.service"] == ["read-property"]


def test_bacnet_forwarded_npdu_with_routing_and_a_network_message() -> None:
    # forwarded-npdu (original source 10.0.0.9:47808), NPDU to DNET 5 (DLEN 1,
    # DADR 7) with a hop count, carrying an unconfirmed who-is; then a
    # network-layer Who-Is-Router-To-Network (control bit 7), no APDU.
    source = bytes([10, 0, 0, 9, 0xBA, 0xC0])
    who_is = source + bytes([1, 0x20, 0, 5, 1, 7, 255, 0x10, 8])
    router = bytes([1, 0x80, 0x00])
    state = new_app_state("udp", 47808, 47808)
    for function, npdu in ((0x04, who_is), (0x0B, router)):
        state.feed(0, bytes([0x81, function, 0, 4 + len(npdu)]) + npdu, None, 0)
    fields = state.fields()
    assert state.errors == 0
    assert fields["fpc.bacnet.function"] == ["forwarded-npdu", "original-broadcast"]
    assert fields["fpc.bacnet.service"] == ["who-is"]


def test_bacnet_datagram_without_npdu_is_skipped_not_an_error() -> None:
    state = new_app_state("udp", 47808, 47808)
    state.feed(0, NO_NPDU, None, 0)
    state.feed(0, READ_PROPERTY, None, 0)
    assert state.errors == 0
    assert state.fields()["fpc.bacnet.service"] == ["read-property"]


def test_bacnet_bvlc_length_must_be_the_datagrams() -> None:
    state = new_app_state("udp", 47808, 47808)
    state.feed(0, READ_PROPERTY + b"\x00", None, 0)
    assert "bacnet" not in state.protocols()
