"""The capture's process settings take effect and are inherited by forks."""

import gc
import os

from fpc.runtime import GC_THRESHOLDS, tune_for_capture


def test_tune_for_capture_sets_collector_thresholds_seen_by_a_fork() -> None:
    before = gc.get_threshold()
    try:
        tune_for_capture()
        assert gc.get_threshold() == GC_THRESHOLDS
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child reports what it inherited
            os.write(write, repr(gc.get_threshold()).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        assert os.read(read, 100).decode() == repr(GC_THRESHOLDS)
        os.close(read)
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_tune_for_capture_leaves_objects_loaded_at_start_out_of_collections() -> None:
    loaded = object.__new__(type("Loaded", (), {}))  # a gc-tracked object
    try:
        tune_for_capture()
        assert gc.get_freeze_count() > 0
        assert not any(o is loaded for o in gc.get_objects())  # frozen: not listed
        later = object.__new__(type("Later", (), {}))
        assert any(o is later for o in gc.get_objects())  # made after: collected
    finally:
        gc.unfreeze()
