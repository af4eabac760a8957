"""The SQLite store's row encoding: record times and the JSON kept per record."""

from __future__ import annotations

import json
import sqlite3

import pytest

from fpc.spi import iso_ns
from fpc.store.base import SessionQuery, encode_record
from fpc.store.sqlite import PAGE_BYTES, SCHEMA, SqliteStore, _ns, _where

NS = 1_000_000_000


@pytest.mark.parametrize(
    "ts_ns",
    [0, 1, 1_705_312_800 * NS + 123_456_789, -1, -86_400 * NS - 5, 4_102_444_800 * NS],
)
def test_record_time_reads_back_to_the_nanosecond(ts_ns):
    assert _ns(iso_ns(ts_ns)) == ts_ns


@pytest.mark.parametrize(
    "record",
    [
        {"a": [1, 2], "b": {"c": "é\u2028"}, "d": None},
        {"big": 1 << 70},  # past 64 bits: the standard library encodes it
    ],
)
def test_encoded_record_is_compact_json_of_the_record(record):
    text = encode_record(record)
    assert json.loads(text) == record
    assert ", " not in text and ": " not in text


def test_store_keeps_the_record_it_was_given(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"))
    record = {
        "@timestamp": iso_ns(5 * NS),
        "event": {"id": "n-1-24-0-0", "start": iso_ns(5 * NS), "end": iso_ns(7 * NS)},
        "observer": {"name": "n"},
        "source": {"ip": "192.0.2.1", "port": 1},
        "destination": {"ip": "192.0.2.2", "port": 2},
        "fpc": {"session": "n-1-24-0-0", "protocols": ["udp"], "n": 1 << 65},
    }
    store.save_sessions([record])
    assert store.get_session("n-1-24-0-0") == record
    store.close()


def _record(n: int) -> dict:
    sid = f"n-1-{n}-0-0"
    return {
        "@timestamp": iso_ns(n * NS),
        "event": {"id": sid, "start": iso_ns(n * NS), "end": iso_ns(n * NS)},
        "observer": {"name": "n"},
        "source": {"ip": "192.0.2.1", "port": n},
        "destination": {"ip": "192.0.2.2", "port": 2},
        "fpc": {"session": sid, "protocols": ["udp"], "packet": {"pos": [24] * 300}},
    }


def test_new_database_has_pages_that_hold_a_record(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"))
    store.save_sessions([_record(1)])
    page_size = store._db.execute("PRAGMA page_size").fetchone()[0]
    assert page_size == PAGE_BYTES
    assert len(encode_record(_record(1))) < PAGE_BYTES  # no overflow page
    store.close()


def test_database_of_smaller_pages_is_still_read_and_written(tmp_path):
    path = str(tmp_path / "old.sqlite")
    old = sqlite3.connect(path)
    old.execute("PRAGMA page_size=4096")
    old.execute("PRAGMA journal_mode=WAL")
    old.close()
    store = SqliteStore(path)
    store.save_sessions([_record(1), _record(2)])
    assert store._db.execute("PRAGMA page_size").fetchone()[0] == 4096
    assert store.get_session("n-1-2-0-0") == _record(2)
    store.close()


def test_search_ip_finds_an_address_only_in_related_ip(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"))
    named = _record(1)
    named["related"] = {"ip": ["192.0.2.1", "192.0.2.2", "198.51.100.50"]}
    store.save_sessions([named, _record(2)])
    got = store.search_sessions(SessionQuery(ip="198.51.100.50"))
    assert [r["event"]["id"] for r in got] == ["n-1-1-0-0"]
    got = store.search_sessions(SessionQuery(ip="192.0.2.1"))
    assert len(got) == 2
    assert store.search_sessions(SessionQuery(ip="198.51.100.5")) == []
    store.close()


def test_database_of_an_older_version_keeps_its_sessions_rows(tmp_path):
    # An older fpc-capture may still be writing 11-column rows into the file
    # a newer fpc opens: the sessions table must stay as it was.
    path = str(tmp_path / "old.sqlite")
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.split("-- related.ip")[0])
    old.commit()
    store = SqliteStore(path)
    named = _record(3)
    named["related"] = {"ip": ["192.0.2.1", "192.0.2.2", "198.51.100.50"]}
    store.save_sessions([named])
    old.execute(
        "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        ("old-1", "old-1", "n", 0, 0, "192.0.2.9", "192.0.2.2", 1, 2, " udp ", "{}"),
    )
    old.commit()
    old.close()
    assert len(store.search_sessions(SessionQuery(ip="192.0.2.9"))) == 1
    assert len(store.search_sessions(SessionQuery(ip="198.51.100.50"))) == 1
    store.close()


def test_search_ip_uses_indexes_not_a_table_scan(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"))
    where, args = _where(SessionQuery(ip="198.51.100.50"))
    plan = store._db.execute(
        "EXPLAIN QUERY PLAN SELECT doc FROM sessions WHERE " + " AND ".join(where),
        args,
    ).fetchall()
    steps = " / ".join(row[-1] for row in plan)
    assert "SCAN sessions" not in steps, steps
    store.close()


def test_resaved_record_keeps_one_row_per_related_address(tmp_path):
    store = SqliteStore(str(tmp_path / "s.sqlite"))
    named = _record(4)
    named["related"] = {"ip": ["192.0.2.1", "192.0.2.2", "198.51.100.50"]}
    store.save_sessions([named])
    named["related"]["ip"][2] = "198.51.100.51"
    store.save_sessions([named])
    assert store.search_sessions(SessionQuery(ip="198.51.100.50")) == []
    assert len(store.search_sessions(SessionQuery(ip="198.51.100.51"))) == 1
    store.close()
