"""Stage 1 for saved captures: feed pcap/pcapng files through the pipeline.

In: paths from `fpc-capture -r` (files, directories). Out: batches into
`fpc.pipeline.Pipeline`. A damaged file is reported and the good records
before the damage are kept; the next file is read all the same.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Generator, Iterator
from contextlib import closing
from typing import Any

import numpy as np

from fpc.config import Config
from fpc.errors import CaptureError, ConfigError, CorruptCapture
from fpc.packets import PacketBatch
from fpc.pipeline import Pipeline
from fpc.reader import expand_paths, open_capture

logger = logging.getLogger(__name__)

# Packets per batch: the per-batch cost in Python (numpy calls on small
# arrays, one round through every stage) is paid 8 times less than with the
# reader's default of 512, and a session's TCP segments more often sit next
# to each other in a batch, where the app-layer parsers take them as one chunk.
BATCH_PACKETS = 4096
BATCH_BYTES = 4 << 20
READ_AHEAD = 2  # batches read before the pipeline takes them


def read_files(
    pipeline: Pipeline,
    paths: list[str],
    recursive: bool,
    cfg: Config,
    stop: threading.Event,
    quiet: bool = False,
    overlap: bool = True,
    listed: list[tuple[str, int | None]] | None = None,
) -> int:
    """Run every capture file through `pipeline`; returns the files with errors.
    With `overlap`, a thread reads ahead while the pipeline works (see
    `read_ahead`): worth it only where a core would otherwise be idle.
    `listed`: the files already listed (`list_with_sizes`), each read only up
    to the size it had then, so that processes reading the same files see the
    same packets even if a file grows meanwhile; `paths` is then not used."""
    if listed is None:
        listed = [(path, None) for path in expand_paths(paths, recursive)]
    bar = _progress_bar(listed, quiet)
    errors = 0
    bpf = BpfFilter(cfg.capture.bpf) if cfg.capture.bpf else None
    for path, size in listed:
        if stop.is_set():
            break
        errors += _read_one(pipeline, path, bpf, stop, bar, overlap, size)
    if bar is not None:
        bar.close()
    return errors


def list_with_sizes(paths: list[str], recursive: bool) -> list[tuple[str, int | None]]:
    """The capture files of `paths` (as `read_files` lists them) with their
    sizes now; a file gone since it was listed is left out with a warning."""
    listed: list[tuple[str, int | None]] = []
    for path in expand_paths(paths, recursive):
        try:
            listed.append((path, os.path.getsize(path)))
        except OSError as exc:
            logger.warning("capture file skipped path=%s error=%s", path, exc.strerror)
    return listed


def _read_one(
    pipeline: Pipeline,
    path: str,
    bpf: BpfFilter | None,
    stop: threading.Event,
    bar: Any,
    overlap: bool,
    limit: int | None,
) -> int:
    done = 0
    try:
        with open_capture(path, limit) as capture:
            read = capture.batches(BATCH_PACKETS, BATCH_BYTES)
            with closing(read_ahead(read) if overlap else read) as batches:
                logger.info(
                    "reading capture file path=%s format=%s", path, capture.format
                )
                for batch in batches:
                    pipeline.process(bpf.apply(batch) if bpf else batch)
                    if bar is not None:
                        bar.update(capture.position - done)
                        done = capture.position
                    if stop.is_set():
                        break
    except CorruptCapture as exc:
        logger.error("%s", exc)
        return 1
    except CaptureError as exc:
        logger.error("skipping capture file: %s", exc)
        return 1
    return 0


def read_ahead(batches: Iterator[PacketBatch]) -> Generator[PacketBatch, None, None]:
    """`batches` in order, read on a thread up to READ_AHEAD batches ahead.

    Reading (file reads, the C record scan) runs without the GIL, so on a
    second core it overlaps the pipeline's work on the batch before. An error
    of the reader is raised here after the batches read before it. The thread
    ends with the generator, also when the caller stops early.
    """
    ready: queue.Queue[PacketBatch | BaseException | None] = queue.Queue(READ_AHEAD)
    quit_ = threading.Event()

    def hand(item: PacketBatch | BaseException | None) -> bool:
        """Queue `item` for the caller; False once the caller has stopped."""
        while not quit_.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not hand(batch):
                    return
            hand(None)
        except BaseException as exc:  # handed to the caller, who raises it
            hand(exc)

    reader = threading.Thread(target=read, name="fpc-read-ahead", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        quit_.set()
        reader.join()


def has_spare_core(processes: int) -> bool:
    """Whether a read-ahead thread would find a core that `processes`
    reading processes leave idle (else it only contends for the GIL)."""
    return (os.cpu_count() or 1) > processes


def _progress_bar(listed: list[tuple[str, int | None]], quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None

    from tqdm import tqdm

    total = sum(os.path.getsize(f) if size is None else size for f, size in listed)
    return tqdm(total=total, unit="B", unit_scale=True, desc="fpc-capture", leave=False)


# libpcap compiles for a DLT_ value; these LINKTYPE_ values in files differ.
LINKTYPE_TO_DLT = {101: 12}  # LINKTYPE_RAW is DLT_RAW (12 on Linux)


class BpfFilter:
    """A tcpdump expression applied to saved packets, compiled per link type."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._programs: dict[int, Any] = {}  # link type -> program, None: cannot

    def _program(self, linktype: int) -> Any:
        """The compiled filter for `linktype`; None if libpcap cannot filter it."""
        if linktype not in self._programs:
            try:
                self._programs[linktype] = self._compile(linktype)
            except ConfigError as exc:
                logger.warning("%s; packets of that link type are left out", exc)
                self._programs[linktype] = None
        return self._programs[linktype]

    def _compile(self, linktype: int) -> Any:
        import pcapy

        try:
            dlt = LINKTYPE_TO_DLT.get(linktype, linktype)
            return pcapy.compile(dlt, 262144, self.expression, 1, 0)
        except pcapy.PcapError as exc:
            raise ConfigError(
                f"BPF filter {self.expression!r} does not compile for link "
                f"type {linktype} ({exc}); check the expression as for tcpdump"
            ) from exc

    def check(self) -> None:
        """Raise ConfigError now if the expression does not compile for Ethernet."""
        self._compile(1)

    def apply(self, batch: PacketBatch) -> PacketBatch:
        """The packets of `batch` that the filter accepts."""
        # TODO: filtering calls libpcap once per packet from Python; a C
        # loop over the batch would remove that cost when a filter is set.
        keep = np.zeros(len(batch), dtype=bool)
        for i in range(len(batch)):
            prog = self._program(int(batch.linktype[i]))
            keep[i] = prog is not None and prog.filter(batch.packet(i)) != 0
        return batch.subset(keep)
