"""Protocols fpc names without taking fields (Telnet, MongoDB) against
Arkime's sessions, and look-alikes they must not claim."""

from __future__ import annotations

from test_appl_corpus import arkime_sessions, run_session

from fpc.appl import new_app_state

# The client's first request in mongo.pcap (OP_QUERY on admin.$cmd), cut.
MONGO_QUERY = bytes.fromhex(
    "3b0000000000000000000000d4070000000000006162746573742e24636d640000000000ffffffff"
)


def test_telnet_session_is_named_as_arkime_names_it() -> None:
    (body,) = arkime_sessions("mpls-basic", "telnet")
    state = run_session("mpls-basic", body)
    assert state.protocols() == ["telnet"] and state.errors == 0


def test_mongo_sessions_are_named_as_arkime_names_them() -> None:
    bodies = arkime_sessions("mongo", "mongo")
    assert {b["destination"]["port"] for b in bodies} == {27017, 30000}
    for body in bodies:  # port 30000 is named by the OP_QUERY alone
        state = run_session("mongo", body)
        assert state.protocols() == ["mongo"] and state.errors == 0


def test_mongo_query_off_port_needs_a_collection_name() -> None:
    state = new_app_state("tcp", 40000, 40001)
    state.feed(0, MONGO_QUERY, 1, 0)
    assert state.protocols() == ["mongo"]
    no_dot = MONGO_QUERY.replace(b"abtest.$cmd", b"abtest_$cmd")
    state = new_app_state("tcp", 40000, 40001)
    state.feed(0, no_dot, 1, 0)
    assert state.protocols() == []


def test_telnet_off_port_needs_two_negotiations() -> None:
    for data, want in (
        (b"\xff\xfd\x03\xff\xfb\x1f", ["telnet"]),
        (b"\xff\xfd\x03ab", []),
    ):
        state = new_app_state("tcp", 40000, 2323)
        state.feed(0, data, 1, 0)
        assert state.protocols() == want
