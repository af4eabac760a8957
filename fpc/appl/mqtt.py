"""MQTT parser (TCP 1883): the client's login, its topics and the message types.

In: the in-order bytes of each direction from `fpc.appl.state`. Out:
`fpc.mqtt.version`, `client_id`, `user` and `will_topic` from the client's
CONNECT, the CONNACK return (reason) codes, the topics of PUBLISH messages and
the topic filters of SUBSCRIBE and UNSUBSCRIBE, and every message type seen.
Of a long message only the first MAX_HEAD bytes are read (the topic comes
first); the rest is passed over unbuffered. After MAX_MESSAGES messages in
either direction the parser stops.

Layout (MQTT 3.1.1 sections 2 and 3; MQTT 5.0 adds the properties)::

    fixed header  type(4) flags(4) remaining_length(1..4 bytes, 7 bits each,
                  least significant first, high bit: more)
    string        length(16) UTF-8
    CONNECT       string protocol_name ("MQTT"; "MQIsdp" in 3.1) level(8)
                  connect_flags(8) keep_alive(16) [5.0: properties]
                  client_id [5.0: will properties] [will_topic will_payload]
                  [user] [password]
    connect_flags user(1) password(1) will_retain(1) will_qos(2) will(1)
                  clean_session(1) reserved(1)
    CONNACK       ack_flags(8) return_code(8) [5.0: properties]
    PUBLISH       topic [packet_id(16) when QoS > 0] [5.0: properties] payload
    SUBSCRIBE     packet_id(16) [5.0: properties] 1*(topic_filter options(8))
    UNSUBSCRIBE   packet_id(16) [5.0: properties] 1*topic_filter
    properties    length(variable byte integer) properties
"""

from __future__ import annotations

from fpc.appl.buffer import ByteBuffer
from fpc.appl.cursor import Cursor, ParseError
from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

TYPES = ("RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
         "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ",
         "PINGRESP", "DISCONNECT", "AUTH")  # fmt: skip
CONNECT, CONNACK, PUBLISH, SUBSCRIBE, UNSUBSCRIBE = 1, 2, 3, 8, 10
PROTOCOL_NAMES = (b"MQTT", b"MQIsdp")
LEVELS = {3: "3.1", 4: "3.1.1", 5: "5.0"}  # CONNECT protocol level to version
FLAG_USER, FLAG_WILL = 0x80, 0x04
MAX_LENGTH_BYTES = 4  # of the remaining length (MQTT caps it at 256 MiB)
MAX_HEAD = 8192  # bytes of a message read; a CONNECT with its will fits
MAX_MESSAGES = 1024  # per direction


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A client's CONNECT: type 1, flags 0, a known protocol name and level."""
    if direction != 0 or data[:1] not in (b"", b"\x10"):
        return Verdict.NO
    try:
        length, start = remaining_length(data)
    except ParseError:
        return Verdict.NO
    head = data[start : start + 9]
    if length < 0 or len(head) < 9:
        return Verdict.MORE if len(data) < 16 else Verdict.NO
    name_len = int.from_bytes(head[:2], "big")
    name, level = head[2 : 2 + name_len], head[2 + name_len : 3 + name_len]
    known = name in PROTOCOL_NAMES and level and level[0] in LEVELS
    return Verdict.YES if known else Verdict.NO


def remaining_length(head: bytes) -> tuple[int, int]:
    """(length, offset of the variable header) of a fixed header; length -1
    when the bytes end inside it."""
    value = 0
    for i in range(1, min(len(head), 1 + MAX_LENGTH_BYTES)):
        value |= (head[i] & 0x7F) << (7 * (i - 1))
        if not head[i] & 0x80:
            return value, i + 1
    if len(head) > MAX_LENGTH_BYTES:
        raise ParseError(f"mqtt remaining length {head[1:5].hex()} over 4 bytes")
    return -1, 0


class MqttParser(Parser):
    name = "mqtt"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self._bufs = (ByteBuffer(), ByteBuffer())
        self._skip = [0, 0]  # bytes of a long message still to pass over
        self._messages = [0, 0]
        self._level = 4  # CONNECT's protocol level; 3.1.1 until one is seen

    def feed(self, direction: int, data: bytes) -> None:
        data = data[self._pass_over(direction, len(data)) :]
        buf = self._bufs[direction]
        buf.add(data)
        while not self.done and (message := self._next(direction, buf)) is not None:
            kind, flags, body, whole = message
            if not kind:
                raise ParseError(f"mqtt type 0 (reserved) in direction {direction}")
            self._messages[direction] += 1
            self.done = max(self._messages) >= MAX_MESSAGES
            self.sink.add("fpc.mqtt.message_type", TYPES[kind])
            try:
                self._on_message(kind, flags, Cursor(body))
            except ParseError:
                if whole:
                    raise  # only a message cut at MAX_HEAD may end early

    def _pass_over(self, direction: int, size: int) -> int:
        """Bytes of a chunk of `size` that belong to a long message's rest."""
        n = min(self._skip[direction], size)
        self._skip[direction] -= n
        return n

    def _next(
        self, direction: int, buf: ByteBuffer
    ) -> tuple[int, int, bytes, bool] | None:
        """(type, flags, first bytes of the body, whole?) of the next message,
        or None until its fixed header and its first bytes are here."""
        head = buf.peek(1 + MAX_LENGTH_BYTES)
        length, start = remaining_length(head) if head else (-1, 0)
        if length < 0 or len(buf) < start + min(length, MAX_HEAD):
            return None
        message = buf.take(start + min(length, MAX_HEAD))
        rest = length - min(length, MAX_HEAD)
        if rest:
            passed = min(rest, len(buf))
            buf.take(passed)
            self._skip[direction] = rest - passed
        return message[0] >> 4, message[0] & 0x0F, message[start:], not rest

    def _on_message(self, kind: int, flags: int, c: Cursor) -> None:
        if kind == CONNECT:
            self._on_connect(c)
        elif kind == CONNACK and c.remaining >= 2:
            c.skip(1, "mqtt connack flags")
            self.sink.add("fpc.mqtt.connack_code", c.u8("mqtt connack code"))
        elif kind == PUBLISH:
            self._add_text("fpc.mqtt.topic", _string(c, "mqtt publish topic"))
        elif kind in (SUBSCRIBE, UNSUBSCRIBE):
            self._on_subscribe(c, options=kind == SUBSCRIBE)

    def _on_connect(self, c: Cursor) -> None:
        name = _string(c, "mqtt protocol name")
        level = c.u8("mqtt protocol level")
        if name not in PROTOCOL_NAMES or level not in LEVELS:
            raise ParseError(f"mqtt connect: protocol {name!r} level {level}")
        self._level = level
        self.sink.add("fpc.mqtt.version", LEVELS[level])
        flags = c.u8("mqtt connect flags")
        c.skip(2, "mqtt keep alive")
        self._skip_properties(c)
        self._add_text("fpc.mqtt.client_id", _string(c, "mqtt client id"))
        if flags & FLAG_WILL:
            self._skip_properties(c)
            self._add_text("fpc.mqtt.will_topic", _string(c, "mqtt will topic"))
            _string(c, "mqtt will payload")
        if flags & FLAG_USER:
            self._add_text("fpc.mqtt.user", _string(c, "mqtt user name"))

    def _on_subscribe(self, c: Cursor, options: bool) -> None:
        c.skip(2, "mqtt packet id")
        self._skip_properties(c)
        while c.remaining:
            self._add_text("fpc.mqtt.topic", _string(c, "mqtt topic filter"))
            if options:
                c.skip(1, "mqtt subscription options")

    def _skip_properties(self, c: Cursor) -> None:
        if self._level < 5:
            return
        size = shift = 0
        for _ in range(MAX_LENGTH_BYTES):
            byte = c.u8("mqtt properties length")
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        c.skip(size, "mqtt properties")

    def _add_text(self, name: str, value: bytes) -> None:
        if value:
            self.sink.add(name, value.decode("utf-8", "backslashreplace"))


def _string(c: Cursor, what: str) -> bytes:
    return c.take(c.u16(what), what)


register(
    ParserSpec(
        name="mqtt",
        transports=frozenset({"tcp"}),
        ports=frozenset({1883}),
        classify=classify,
        create=MqttParser,
    )
)
