"""One running capture per node and PCAP directory.

A capture that starts repairs the newest PCAP file of its node: it cuts off a
record the previous run left half written. Done while another process still
writes that file, the repair would cut into the records being written. So
`fpc-capture` holds an exclusive lock on `<pcap_dir>/.<node>.lock` while it
runs (its workers inherit it), and a second capture for the same node and
directory refuses to start. Captures of other nodes may share the directory.
"""

from __future__ import annotations

import fcntl
import os
from types import TracebackType

from fpc.errors import FpcError


class CaptureLock:
    """Held from `__enter__` to `__exit__`; the kernel drops it if we die."""

    def __init__(self, pcap_dir: str, node: str) -> None:
        self.pcap_dir = pcap_dir
        self.node = node
        self.path = os.path.join(pcap_dir, f".{node}.lock")
        self._fd: int | None = None

    def __enter__(self) -> CaptureLock:
        try:
            os.makedirs(self.pcap_dir, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise FpcError(
                f"cannot create the lock file {self.path} ({exc.strerror}); check "
                "that the PCAP directory is writable, or pass another --data-dir"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FpcError(
                f"another fpc-capture (pid {holder}) is writing the PCAP files of "
                f"node {self.node} in {self.pcap_dir}; stop it first, or give this "
                "capture another --data-dir, --pcap-dir or --node"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays for the next run
            self._fd = None
