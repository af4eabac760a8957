"""Stage 1 for saved captures: feed pcap/pcapng files through the pipeline.

In: paths from `fpc-capture -r` (files, directories). Out: batches into
`fpc.pipeline.Pipeline`. A damaged file is reported and the good records
before the damage are kept; the next file is read all the same.
"""

from __future__ import annotations

import logging
import sys
import threading
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


def read_files(
    pipeline: Pipeline,
    paths: list[str],
    recursive: bool,
    cfg: Config,
    stop: threading.Event,
    quiet: bool = False,
) -> int:
    """Run every capture file through `pipeline`; returns the files with errors."""
    files = expand_paths(paths, recursive)
    bar = _progress_bar(files, quiet)
    errors = 0
    bpf = BpfFilter(cfg.capture.bpf) if cfg.capture.bpf else None
    for path in files:
        if stop.is_set():
            break
        errors += _read_one(pipeline, path, bpf, stop, bar)
    if bar is not None:
        bar.close()
    return errors


def _read_one(
    pipeline: Pipeline,
    path: str,
    bpf: BpfFilter | None,
    stop: threading.Event,
    bar: Any,
) -> int:
    done = 0
    try:
        with open_capture(path) as capture:
            logger.info("reading capture file path=%s format=%s", path, capture.format)
            for batch in capture.batches(BATCH_PACKETS, BATCH_BYTES):
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


def _progress_bar(files: list[str], quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    import os

    from tqdm import tqdm

    total = sum(os.path.getsize(f) for f in files)
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
