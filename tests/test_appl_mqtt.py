"""MQTT against Arkime's session of mqtt_big (MQTT 3.1.1 with PUBLISH messages
longer than a TCP segment, one interleaved with a server message), and
messages built as the MQTT 3.1 and 5.0 specifications lay them out."""

from __future__ import annotations

from test_appl_corpus import arkime_sessions, run_session, session_packets

from fpc.appl import new_app_state
from fpc.appl.mqtt import MAX_HEAD

# The client's first segment of mqtt_big: CONNECT, MQTT 3.1.1, user and will.
CONNECT_311 = bytes.fromhex(
    "103a00044d5154540486003c000f746573742d636c69656e742d313233000a77696c6c2f"
    "746f7069630007676f6f6462796500087465737475736572"
)


def _mqtt_state():  # noqa: ANN202
    return new_app_state("tcp", 45678, 1883)


def _feed_stream(state, direction: int, data: bytes, seq: int = 1) -> int:  # noqa: ANN001
    state.feed(direction, data, seq, 0x18)
    return seq + len(data)


def test_mqtt_session_matches_arkime() -> None:
    (body,) = arkime_sessions("mqtt_big", "mqtt")
    state = run_session("mqtt_big", body)
    got, want = state.fields(), body["mqtt"]
    assert state.protocols() == ["mqtt"] and state.errors == 0
    assert set(got["fpc.mqtt.message_type"]) == set(want["type"])
    assert got["fpc.mqtt.version"] == want["version"]
    assert got["fpc.mqtt.client_id"] == want["clientId"]
    assert got["fpc.mqtt.will_topic"] == want["willTopic"]
    assert got["fpc.mqtt.connack_code"] == want["connackCode"]
    assert set(got["fpc.mqtt.topic"]) == set(want["topic"])
    assert got["fpc.mqtt.user"] == body["user"]


def test_mqtt_connect_one_byte_per_segment_gives_the_same_login() -> None:
    state = _mqtt_state()
    seq = 1
    for i in range(len(CONNECT_311)):
        seq = _feed_stream(state, 0, CONNECT_311[i : i + 1], seq)
    fields = state.fields()
    assert state.protocols() == ["mqtt"] and state.errors == 0
    assert fields["fpc.mqtt.user"] == ["testuser"]
    assert fields["fpc.mqtt.client_id"] == ["test-client-123"]


def test_mqtt_long_publish_is_passed_over_and_the_next_message_read() -> None:
    # The client's PUBLISH of 12,016 bytes to test/bigdata in mqtt_big, whole,
    # then its next message (a PUBLISH to test/afterbig), in one chunk.
    (body,) = arkime_sessions("mqtt_big", "mqtt")
    client = [p for d, p, _, _ in session_packets("mqtt_big", body) if d == 0 and p]
    big = b"".join(client[6:15])
    assert len(big) > MAX_HEAD and big[:1] == b"\x32"
    state = _mqtt_state()
    seq = _feed_stream(state, 0, CONNECT_311)
    _feed_stream(state, 0, big + client[15], seq)
    topics = state.fields()["fpc.mqtt.topic"]
    assert topics == ["test/bigdata", "test/afterbig"] and state.errors == 0


def test_mqtt_31_connect_names_version_31() -> None:
    # MQTT 3.1: protocol name "MQIsdp", level 3, no user, no will.
    payload = b"\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x04dev1"
    state = _mqtt_state()
    _feed_stream(state, 0, bytes([0x10, len(payload)]) + payload)
    assert state.protocols() == ["mqtt"]
    assert state.fields()["fpc.mqtt.version"] == ["3.1"]
    assert state.fields()["fpc.mqtt.client_id"] == ["dev1"]


def test_mqtt_5_properties_are_skipped() -> None:
    # MQTT 5.0 CONNECT: session expiry property (0x11, 4 bytes), user and
    # will with a will delay property (0x18); SUBSCRIBE with an empty
    # property block; PUBLISH QoS 1 with a packet id and properties.
    connect = (
        b"\x00\x04MQTT\x05\x84\x00\x3c" + b"\x05\x11\x00\x00\x00\x0a"
        b"\x00\x03cid" + b"\x05\x18\x00\x00\x00\x05" + b"\x00\x01w\x00\x01x"
        b"\x00\x05alice"
    )
    subscribe = b"\x00\x07\x00\x00\x03a/b\x01"
    publish = b"\x00\x03c/d\x00\x08\x00hello"
    stream = (
        bytes([0x10, len(connect)]) + connect
        + bytes([0x82, len(subscribe)]) + subscribe
        + bytes([0x32, len(publish)]) + publish
    )  # fmt: skip
    state = _mqtt_state()
    _feed_stream(state, 0, stream)
    fields = state.fields()
    assert state.errors == 0 and fields["fpc.mqtt.version"] == ["5.0"]
    assert fields["fpc.mqtt.user"] == ["alice"]
    assert fields["fpc.mqtt.will_topic"] == ["w"]
    assert fields["fpc.mqtt.topic"] == ["a/b", "c/d"]


def test_mqtt_is_not_http_or_a_server_first_protocol_on_1883() -> None:
    state = _mqtt_state()
    _feed_stream(state, 0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert "mqtt" not in state.protocols()
    state = _mqtt_state()
    _feed_stream(state, 1, CONNECT_311)
    assert "mqtt" not in state.protocols()
