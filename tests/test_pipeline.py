"""The whole pipeline on every capture of the corpus: no crash, no packet lost."""

from __future__ import annotations

import pytest

from conftest import corpus_files, run_pipeline
from fpc.config import load_config
from fpc.pipeline import Pipeline
from fpc.reader import open_capture
from fpc.store import open_store
from fpc.store.base import SessionQuery
from fpc.store.sqlite import SqliteStore

ALL = corpus_files()


def manifest_rows(corpus_root) -> dict[str, tuple[int, bool]]:
    """name -> (packets, parses cleanly) per the corpus MANIFEST (independent)."""
    rows = {}
    for line in (corpus_root / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 10 and cells[1].endswith((".pcap", ".pcapng", ".cap")):
            other = cells[1].startswith("other/")
            packets, parses = (cells[6], cells[8]) if other else (cells[8], cells[10])
            if packets.isdigit():
                rows[cells[1]] = (int(packets), parses == "yes")
    return rows


@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_pipeline_corpus_file_conserves_packets(path, tmp_path, corpus):
    summary, records, _store = run_pipeline([path], tmp_path)
    # Every packet read is written once, and is either in a session or counted
    # as a non-session frame.
    assert summary["pcap_packets"] == summary["packets"]
    assert summary["pcap_write_failed"] == 0
    in_sessions = sum(r["network"]["packets"] for r in records)
    assert in_sessions == summary["session_packets"]
    non_session = summary["non_ip"] + summary["malformed"] + summary["unsupported_link"]
    assert summary["packets"] == in_sessions + non_session
    positions = sum(len(r["fpc"]["packet"]["pos"]) for r in records)
    assert positions == in_sessions
    name = f"{path.parent.name}/{path.name}"
    expected, clean = manifest_rows(corpus)[name]
    if clean:
        assert summary["packets"] == expected
    else:  # damaged: the records before the damage, or none if the header is bad
        assert summary["packets"] in (0, expected)


def test_pipeline_record_ids_are_unique_even_for_repeated_captures(tmp_path):
    """The corpus holds copies of the same sessions; reading a file twice as well
    must give every record its own id, and the store must keep them all."""
    paths = corpus_files("arkime")
    _summary, records, store = run_pipeline(paths + paths[:3], tmp_path)
    ids = [r["event"]["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert len(store.search_sessions(SessionQuery(limit=100_000))) == len(records)


@pytest.mark.parametrize("key_vlan", [False, True])
def test_pipeline_session_mirrored_on_two_vlans_is_one_unless_keyed_by_vlan(
    key_vlan, tmp_path, corpus
):
    """mongo.pcap holds each TCP session twice, once tagged 300 and once 50."""
    cfg = {"sessions.key_vlan": key_vlan}
    _summary, records, _store = run_pipeline(
        [corpus / "arkime" / "mongo.pcap"], tmp_path, **cfg
    )
    port = [r for r in records if r["source"]["port"] == 51822]
    vlans = [r["network"]["vlan"]["id"] for r in port]
    if key_vlan:
        assert sorted(vlans) == ["300", "50"]
    else:
        assert vlans == [["50", "300"]]


def test_pipeline_node_counters_sum_every_live_drop(tmp_path):
    cfg = load_config(None, {"node": "test", "data_dir": str(tmp_path)})
    pipeline = Pipeline(cfg, open_store(cfg.data_dir))
    live = {"received": 10, "dropped": 1, "interface_dropped": 2, "ring_dropped": 4}
    pipeline.capture_stats = lambda: live

    counters = pipeline.node_counters()

    assert counters["packets_received"] == 10
    assert counters["packets_dropped"] == 7
    pipeline.finish()


def _pipeline(tmp_path, hold: int) -> tuple[Pipeline, list[dict]]:
    overrides = {"node": "test", "data_dir": str(tmp_path)}
    cfg = load_config(None, overrides)
    records: list[dict] = []
    return Pipeline(cfg, open_store(cfg.data_dir), records.append, hold), records


def _feed(pipeline: Pipeline, paths) -> None:
    for path in paths:
        with open_capture(str(path)) as capture:
            for batch in capture.batches(max_packets=64):
                pipeline.process(batch)


def test_pipeline_holds_records_until_enough_have_ended(tmp_path):
    """Offline, records are saved in groups of `hold_records`, the rest at the
    end of input; the same records as a pipeline that saves each at once."""
    hold = 20
    # Captures of different days: each file's sessions end at the next file.
    paths = [p for p in corpus_files("arkime") if p.suffix == ".pcap"][:30]
    eager, eager_records = _pipeline(tmp_path / "eager", 0)
    held, held_records = _pipeline(tmp_path / "held", hold)
    _feed(eager, paths)
    _feed(held, paths)
    ended = eager.records
    assert ended > hold
    assert len(eager_records) == ended
    assert 0 <= ended - len(held_records) < hold  # fewer than `hold` still held
    assert len(held.store.search_sessions(SessionQuery(limit=10_000))) == len(
        held_records
    )
    eager.finish()
    held.finish()
    assert held.records == eager.records == len(held_records) == len(eager_records)
    # Both wrote the same PCAP file numbers and positions, so the ids agree.
    by_id = {r["event"]["id"]: r for r in eager_records}
    assert len(by_id) == eager.records
    for record in held_records:
        assert record == by_id[record["event"]["id"]]


class _SizeRecordingStore(SqliteStore):
    """The SQLite store, noting how many records each save hands it."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.saves: list[int] = []

    def save_sessions(self, records: list[dict]) -> None:
        self.saves.append(len(records))
        super().save_sessions(records)


def test_pipeline_saves_the_end_of_input_flush_a_hold_at_a_time(tmp_path):
    """Every session still active at the end of input ends at once; their
    records are built and saved in groups of about `hold_records` (under
    twice that), in order, not all in one save."""
    hold = 4
    paths = [p for p in corpus_files("arkime") if p.name == "ospf.pcap"]
    cfg = load_config(None, {"node": "test", "data_dir": str(tmp_path)})
    store = _SizeRecordingStore(str(tmp_path / "fpc.sqlite"))
    records: list[dict] = []
    pipeline = Pipeline(cfg, store, records.append, hold)
    _feed(pipeline, paths)
    saved_before, active = len(records), len(pipeline.sessions)
    assert active > 3 * hold

    pipeline.finish()

    assert sum(store.saves) == len(records) == pipeline.records
    assert len(records) - saved_before >= active
    assert len(store.saves) >= active // (2 * hold)
    assert all(0 < n < 2 * hold for n in store.saves)
    eager, eager_records = _pipeline(tmp_path / "eager", 0)
    _feed(eager, paths)
    eager.finish()
    assert records == eager_records
