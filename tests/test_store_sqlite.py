"""The SQLite store's row encoding: record times and the JSON kept per record."""

from __future__ import annotations

import json

import pytest

from fpc.spi import iso_ns
from fpc.store.base import encode_record
from fpc.store.sqlite import SqliteStore, _ns

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
