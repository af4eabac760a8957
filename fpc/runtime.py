"""Process settings for the capture: garbage collector and allocator.

A capture allocates a few dicts per session and many short-lived buffers per
batch. With Python's default collector thresholds, full collections walk the
whole session table again and again (a tenth of the offline ingest time was
spent there); with glibc's default allocator thresholds, each batch's
multi-megabyte buffers are mapped and unmapped again, a page fault per page.
Reference counting frees nearly everything here, so collections are rare,
and the objects loaded at start-up are left out of them altogether.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

logger = logging.getLogger(__name__)

GC_THRESHOLDS = (100_000, 50, 1_000)
# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Blocks up to this size come from the heap (batch buffers are about 4 MB);
# free heap at its top past the trim threshold goes back to the system.
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 64 << 20


def tune_for_capture() -> None:
    """Apply both settings to this process (and the workers it forks)."""
    gc.set_threshold(*GC_THRESHOLDS)
    # What is loaded by now (modules, parser tables) lives until exit: frozen,
    # no collection walks it again. The collection at interpreter exit walked
    # it all, about 50 ms per run (perf: the gc was half of a live capture's
    # parent process CPU), and forked workers leave those pages unwritten.
    gc.freeze()
    _tune_malloc()


def _tune_malloc() -> None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        logger.debug("no mallopt in the C library (%s); allocator left as is", name)
        return
    # mallopt returns 0 on error; a non-glibc allocator may ignore it.
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(
        M_TRIM_THRESHOLD, TRIM_THRESHOLD
    )
    if not ok:
        logger.debug("mallopt refused the thresholds; allocator left as is")
