"""Shared fixtures: the capture corpus, a pipeline run on it, test networks."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fpc.config import load_config
from fpc.errors import CaptureError
from fpc.pipeline import Pipeline
from fpc.reader import open_capture
from fpc.store import open_store

pytest_plugins = ["netns", "esnode_fixture"]

CORPUS = Path(
    os.environ.get("FPC_CORPUS", Path(__file__).parents[2] / "shared" / "corpus")
)
SAMPLES = Path(__file__).parents[1] / "samples"
MKPCAP = CORPUS.parent / "tools" / "mkpcap.py"  # the shared traffic generator


def corpus_files(subdir: str = "") -> list[Path]:
    root = CORPUS / subdir
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap")
    )


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.fail(f"capture corpus not found at {CORPUS}; set FPC_CORPUS")
    return CORPUS


def run_pipeline(paths, data_dir, node="test", **overrides):
    """Ingest capture files in-process; returns (pipeline summary, records, store)."""
    cfg = load_config(None, {"node": node, "data_dir": str(data_dir), **overrides})
    store = open_store(cfg.data_dir)
    records: list[dict] = []
    pipeline = Pipeline(cfg, store, records.append)
    for path in paths:
        try:
            with open_capture(str(path)) as capture:
                for batch in capture.batches():
                    pipeline.process(batch)
        except CaptureError:
            pass  # damaged files: the good records before the damage were processed
    pipeline.finish()
    return pipeline.summary(), records, store


def wait_until(
    condition: Callable[[], object], what: str, timeout_s: float = 60
) -> None:
    """Poll `condition` until it is true; fail naming `what` after `timeout_s`.

    For tests that wait on another thread or process: the time limit is only
    a guard against a hang, so it is generous for a loaded machine.
    """
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`small_disk("256k")`: a new tmpfs of that size, to fill up for real;
    unmounted after the test. Skips the test where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        path = tmp_path / f"disk{len(mounted)}"
        path.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                               "tmpfs", str(path)], capture_output=True)  # fmt: skip
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode().strip()}")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=True)
