"""The live benchmark's start-up detection: CPU counts from when every
capturing process of the tool is ready."""

from __future__ import annotations

from bench.bench_live import is_ready

WORKERS = "INFO node=vm fpc.workers: starting workers count=2 interface=veth0\n"
STARTED = "INFO node=vm fpc.capture: capture started interface=veth0 linktype=1\n"


def test_fpc_with_workers_is_ready_once_every_worker_captures():
    assert not is_ready("fpc", WORKERS)
    assert not is_ready("fpc", WORKERS + STARTED)
    assert is_ready("fpc", WORKERS + STARTED + STARTED)


def test_fpc_in_one_process_and_tcpdump_are_ready_at_their_first_line():
    assert is_ready("fpc", STARTED)
    assert not is_ready("tcpdump", "")
    assert is_ready("tcpdump", "listening on veth0, link-type EN10MB\n")
