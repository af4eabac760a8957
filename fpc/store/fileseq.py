"""A node's PCAP file numbers, kept on local disk beside the shared store's.

The writer must open a new PCAP file even while Elasticsearch is down, and a
file number must never be used twice. This file holds the highest number the
node handed out; `next` takes the larger of it + 1 and the cluster's answer,
under an flock so that worker processes of one node never collide.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable


class LocalFileSeq:
    """The high-water mark of `node`'s file numbers in `directory`."""

    def __init__(self, directory: str, node: str) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"file-seq-{node}")

    def next(self, from_store: Callable[[], int | None]) -> int:
        """max(last + 1, from_store()); from_store returns None when unreachable."""
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            last = self._read()
            remote = from_store()
            num = max(last + 1, remote or 0)
            self._write(num)
            return num

    def _read(self) -> int:
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0)
        except FileNotFoundError:
            return 0

    def _write(self, num: int) -> None:
        tmp = f"{self.path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{num}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
