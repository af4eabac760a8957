"""Hashes of HTTP message bodies, for `fpc.appl.http`.

In: the body bytes of one HTTP/1.x message as the HTTP parser frames them
(after Content-Length or chunked framing is removed; content codings such as
gzip are not undone). Out: MD5 and SHA-256 of each non-empty body in
`fpc.http.body.md5` and `fpc.http.body.sha256`. In a session, the HTTP
parser drops the hash of a body that ends past the payload the session table
offers it (`app_bytes` per direction), so a long download costs no parsing.
With no such limit only the first MAX_HASHED_BYTES of a body are hashed: the
hash of a longer body is the hash of that first part.
"""

from __future__ import annotations

import hashlib

from fpc.appl.sink import FieldSink

MAX_HASHED_BYTES = 8 * 1024 * 1024  # 8 MiB of each body


class BodyHash:
    """MD5 and SHA-256 of the body being read in one direction."""

    __slots__ = ("_md5", "_sha256", "_size")

    def __init__(self) -> None:
        self._md5: hashlib._Hash | None = None
        self._sha256: hashlib._Hash | None = None
        self._size = 0

    @property
    def full(self) -> bool:
        return self._size >= MAX_HASHED_BYTES

    def start(self) -> None:
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()
        self._size = 0

    def update(self, data: bytes) -> None:
        if self._md5 is None or self._sha256 is None or not data:
            return
        room = MAX_HASHED_BYTES - self._size
        if room <= 0:
            return
        part = data[:room]
        self._md5.update(part)
        self._sha256.update(part)
        self._size += len(part)

    def drop(self) -> None:
        """Forget the body being hashed: it will not be seen whole."""
        self._md5 = self._sha256 = None
        self._size = 0

    def finish(self, sink: FieldSink) -> None:
        """Adds the hashes of a non-empty body; a body not started is ignored."""
        if self._md5 is not None and self._sha256 is not None and self._size:
            sink.add("fpc.http.body.md5", self._md5.hexdigest())
            sink.add("fpc.http.body.sha256", self._sha256.hexdigest())
        self._md5 = self._sha256 = None
        self._size = 0
