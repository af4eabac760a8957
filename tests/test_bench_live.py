"""The live benchmark's start-up detection: CPU counts from when every
capturing process of the tool is ready."""

from __future__ import annotations

from bench.bench_live import is_ready, parse_capture_counts

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


def _stopped(received: int, dropped: int, ifdrop: int, ring: int = 0) -> str:
    return (
        "INFO node=vm fpc.capture: capture stopped interface=veth0 packets=9 "
        f"bytes=9 wire_bytes=9 received={received} dropped={dropped} "
        f"interface_dropped={ifdrop} ring_dropped={ring}\n"
    )


def test_fpc_drops_are_the_sum_over_every_worker():
    stderr = _stopped(600, 0, 0) + _stopped(400, 17, 2) + "packets read   983\n"
    counts = parse_capture_counts("fpc", stderr)
    assert counts["captured"] == 983
    assert (counts["received"], counts["dropped"], counts["interface_dropped"]) == (
        1000,
        17,
        2,
    )
    assert counts["workers_stopped"] == 2
