"""`fpc-capture --print`: each SPI record as one JSON line on stdout.

Lines are buffered and written whole (several workers share one stdout, each
writing under a shared lock). When the reader of stdout goes away (`| head`),
printing stops with a warning and stdout is pointed at /dev/null; capturing
and storing the records go on, so nothing is lost but the printed copy.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from typing import Any

logger = logging.getLogger(__name__)

FLUSH_BYTES = 1 << 18  # buffered output written at once, from files
LIVE_FLUSH_BYTES = 1 << 13  # live: records show up soon after they end


class RecordPrinter:
    def __init__(self, live: bool, lock: Any = None) -> None:
        self.flush_bytes = LIVE_FLUSH_BYTES if live else FLUSH_BYTES
        if os.isatty(1):
            self.flush_bytes = 0  # someone reads along: every record at once
        self.lock = lock if lock is not None else contextlib.nullcontext()
        self.lines: list[str] = []
        self.size = 0
        self.closed = False

    def add(self, record: dict[str, Any]) -> None:
        if self.closed:
            return
        line = json.dumps(record, separators=(",", ":")) + "\n"
        self.lines.append(line)
        self.size += len(line)
        if self.size >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        data = memoryview("".join(self.lines).encode())
        self.lines, self.size = [], 0
        if self.closed:
            return
        try:
            with self.lock:
                while data:
                    data = data[os.write(1, data) :]
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            self._stop_printing()

    def _stop_printing(self) -> None:
        self.closed = True
        logger.warning(
            "stdout was closed by its reader; records are no longer printed, "
            "capture and storage go on"
        )
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # nothing else written to stdout can fail now
        os.close(devnull)
