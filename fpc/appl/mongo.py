"""MongoDB wire protocol recognition (TCP 27017): a client's first request.

In: the first bytes the client sends, through the classifier. Out: the name
`mongo` in the session's protocols; no fields (commands are BSON documents,
not read).

Layout (MongoDB wire protocol; numbers little-endian)::

    header     message_length(32) request_id(32) response_to(32) op_code(32)
    OP_QUERY   2004: flags(32) full_collection_name(cstring "db.collection")
               skip(32) return(32) query(BSON) ...
    OP_MSG     2013: flag_bits(32) sections: kind(8)=0 body(BSON) | kind 1 ...
    others     2001 update, 2002 insert, 2005 get more, 2006 delete,
               2007 kill cursors, 2012 compressed
"""

from __future__ import annotations

from fpc.appl.registry import Parser, ParserSpec, Verdict, register
from fpc.appl.sink import FieldSink

HDR_LEN = 16
MAX_MESSAGE = 48 * 1024 * 1024  # the server's limit
OP_QUERY, OP_MSG = 2004, 2013
CLIENT_OPS = frozenset({2001, 2002, OP_QUERY, 2005, 2006, 2007, 2012, OP_MSG})
_CLIENT_OP_BYTES = frozenset(op.to_bytes(4, "little") for op in CLIENT_OPS)
MSG_FLAGS = 0x00010003  # checksumPresent, moreToCome, exhaustAllowed
MAX_NAME = 128  # bytes looked at for OP_QUERY's collection name


def classify(transport: str, direction: int, data: bytes, port_hint: bool) -> Verdict:
    """A request header with a client op code; off port 27017 also the start
    of an OP_QUERY ("db.collection") or an OP_MSG body."""
    if direction != 0:
        return Verdict.NO
    if len(data) < HDR_LEN + 5:
        return Verdict.MORE if port_hint and _plausible(data) else Verdict.NO
    if data[12:16] not in _CLIENT_OP_BYTES:
        return Verdict.NO  # most sessions end here, cheaply
    length = int.from_bytes(data[:4], "little")
    op = int.from_bytes(data[12:16], "little")
    if not HDR_LEN + 5 <= length <= MAX_MESSAGE:
        return Verdict.NO
    return Verdict.YES if port_hint or _body_looks_right(op, data) else Verdict.NO


def _plausible(head: bytes) -> bool:
    """The bytes so far could start a request (length and op code unknown yet)."""
    if len(head) >= 4 and int.from_bytes(head[:4], "little") > MAX_MESSAGE:
        return False
    return len(head) < HDR_LEN or int.from_bytes(head[12:16], "little") in CLIENT_OPS


def _body_looks_right(op: int, data: bytes) -> bool:
    body = data[HDR_LEN:]
    if op == OP_QUERY:
        name = body[4 : 4 + MAX_NAME].split(b"\x00", 1)
        return len(name) == 2 and b"." in name[0] and name[0].isascii()
    if op == OP_MSG:
        flags = int.from_bytes(body[:4], "little")
        return not flags & ~MSG_FLAGS and body[4] == 0
    return False


class MongoParser(Parser):
    name = "mongo"

    def __init__(self, sink: FieldSink, transport: str) -> None:
        super().__init__(sink, transport)
        self.done = True  # the name is all fpc takes

    def feed(self, direction: int, data: bytes) -> None:
        return


register(
    ParserSpec(
        name="mongo",
        transports=frozenset({"tcp"}),
        ports=frozenset({27017}),
        classify=classify,
        create=MongoParser,
    )
)
