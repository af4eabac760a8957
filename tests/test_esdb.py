"""fpc-db against a real node: strict templates from the field table, upgrade,
info, expire, wipe."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from elasticsearch import Elasticsearch
from esnode_fixture import make_record

from fpc import esdb
from fpc.fields import FIELDS

pytestmark = pytest.mark.es


def leaf(properties: dict, dotted: str) -> dict:
    node = {"properties": properties}
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def test_templates_map_every_field_strictly(es_client: Elasticsearch, es_prefix):
    esdb.init(es_client, es_prefix)
    found = es_client.indices.get_index_template(name=f"{es_prefix}-*")
    by_name = {t["name"]: t["index_template"] for t in found["index_templates"]}
    assert sorted(by_name) == sorted(
        f"{es_prefix}-{k}" for k in ("sessions", "files", "sequence", "nodes", "stats")
    )
    for tpl in by_name.values():
        assert tpl["template"]["mappings"]["dynamic"] == "strict"
        assert tpl["version"] == esdb.TEMPLATE_VERSION
    props = by_name[f"{es_prefix}-sessions"]["template"]["mappings"]["properties"]
    for field in FIELDS:
        spec = leaf(props, field.name)
        assert spec["type"] == field.es_type, field.name
        assert spec.get("index", True) == field.indexed, field.name


def test_sessions_es_index_gets_alias_and_mapping(es_client, es_prefix) -> None:
    esdb.init(es_client, es_prefix)
    index = f"{es_prefix}-sessions-2025.11.24"
    es_client.index(index=index, id="a", document=make_record(0), refresh=True)
    mapping = es_client.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert leaf(mapping["properties"], "fpc.packet.pos")["index"] is False
    assert list(es_client.indices.get_alias(name=f"{es_prefix}-sessions")) == [index]


def test_upgrade_adds_new_fields_and_keeps_records(es_client, es_prefix, caplog):
    older = tuple(f for f in FIELDS if f.name != "tls.cipher")
    esdb.init(es_client, es_prefix, fields=older, version=esdb.TEMPLATE_VERSION - 1)
    index = f"{es_prefix}-sessions-2025.11.24"
    es_client.index(index=index, id="a", document=make_record(0), refresh=True)
    assert esdb.upgrade(es_client, es_prefix) == []
    versions = esdb.installed_versions(es_client, es_prefix)
    assert set(versions.values()) == {esdb.TEMPLATE_VERSION}
    new = make_record(1) | {"tls": {"cipher": "TLS_AES_128_GCM_SHA256"}}
    es_client.index(index=index, id="b", document=new, refresh=True)
    hits = es_client.search(
        index=index, query={"term": {"tls.cipher": new["tls"]["cipher"]}}
    )
    assert [h["_id"] for h in hits["hits"]["hits"]] == ["b"]
    assert es_client.count(index=index)["count"] == 2


def test_ensure_templates_refuses_newer_version(es_client, es_prefix) -> None:
    esdb.init(es_client, es_prefix, version=esdb.TEMPLATE_VERSION + 1)
    with pytest.raises(esdb.StoreError, match="upgrade fpc on this node"):
        esdb.ensure_templates(es_client, es_prefix)


def test_index_period_start_for_each_rotation() -> None:
    when = datetime(2025, 11, 24, 16, tzinfo=UTC)
    starts = {
        rotation: esdb.index_period_start("p", esdb.sessions_index("p", rotation, when))
        for rotation in esdb.ROTATION_FORMATS
    }
    assert starts == {
        "hourly": when,
        "daily": datetime(2025, 11, 24, tzinfo=UTC),
        "weekly": datetime(2025, 11, 24, tzinfo=UTC),  # a Monday
        "monthly": datetime(2025, 11, 1, tzinfo=UTC),
    }
    assert esdb.index_period_start("p", "p-sessions-reference") is None


def make_day_indices(es: Elasticsearch, prefix: str, days: list[str]) -> None:
    esdb.init(es, prefix)
    for n, day in enumerate(days):
        es.index(index=f"{prefix}-sessions-{day}", id=str(n),
                 document=make_record(n), refresh=True)  # fmt: skip


def test_expire_by_days_keeps_recent_and_newest(es_client, es_prefix) -> None:
    today = datetime.now(UTC).strftime("%Y.%m.%d")
    make_day_indices(es_client, es_prefix, ["2020.01.01", "2020.01.02", today])
    gone = esdb.expire(es_client, es_prefix, days=30)
    assert gone == [
        f"{es_prefix}-sessions-2020.01.01",
        f"{es_prefix}-sessions-2020.01.02",
    ]
    left = es_client.indices.get_alias(name=f"{es_prefix}-sessions")
    assert list(left) == [f"{es_prefix}-sessions-{today}"]


def test_expire_by_size_deletes_oldest_first(es_client, es_prefix) -> None:
    make_day_indices(es_client, es_prefix, ["2020.01.01", "2020.01.02", "2020.01.03"])
    gone = esdb.expire(es_client, es_prefix, max_bytes=0)
    assert gone == [
        f"{es_prefix}-sessions-2020.01.01",
        f"{es_prefix}-sessions-2020.01.02",
    ]


def test_cli_wipe_needs_confirmation(es_url, es_client, es_prefix, monkeypatch) -> None:
    esdb.init(es_client, es_prefix)
    esdb.create_fixed_indices(es_client, es_prefix)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert esdb.main(["--es", es_url, "--prefix", es_prefix, "wipe"]) == 1
    assert es_client.indices.exists(index=f"{es_prefix}-files")
    assert (
        esdb.main(["--es", es_url, "--prefix", es_prefix, "wipe", "--yes-really"]) == 0
    )
    assert not es_client.indices.exists(index=f"{es_prefix}-*", allow_no_indices=False)


def test_cli_info_counts_records_per_day(es_url, es_client, es_prefix, capsys) -> None:
    make_day_indices(es_client, es_prefix, ["2020.01.01"])
    assert esdb.main(["--es", es_url, "--prefix", es_prefix, "info"]) == 0
    out = capsys.readouterr().out
    assert f"{es_prefix}-sessions: version {esdb.TEMPLATE_VERSION}" in out
    assert "sessions 2025-11-24: 1" in out


def test_cli_unreachable_cluster_exits_with_hint(capsys, caplog) -> None:
    assert esdb.main(["--es", "http://127.0.0.1:9", "info"]) == 1
    assert "unreachable" in caplog.text and "fpc-es status" in caplog.text


def test_expire_by_days_deletes_old_stats(es_client, es_prefix) -> None:
    esdb.init(es_client, es_prefix)
    index = f"{es_prefix}-stats"
    for n, when in enumerate(["2020-01-01T00:00:00Z", datetime.now(UTC).isoformat()]):
        doc = {"@timestamp": when, "observer": {"name": "n1"}, "stats": {}}
        es_client.index(index=index, id=str(n), document=doc, refresh=True)
    esdb.expire(es_client, es_prefix, days=30)
    es_client.indices.refresh(index=index)
    hits = es_client.search(index=index)["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["1"]


def test_store_open_adds_fields_of_a_changed_table(es_client, es_prefix, caplog):
    """Same template version, one field fewer installed: opening upgrades it."""
    older = tuple(f for f in FIELDS if f.name != "dns.resolved_ip")
    esdb.init(es_client, es_prefix, fields=older)
    index = f"{es_prefix}-sessions-2025.11.24"
    es_client.index(index=index, id="a", document=make_record(0), refresh=True)
    esdb.ensure_templates(es_client, es_prefix)
    assert "index templates out of date" in caplog.text
    mapping = es_client.indices.get_mapping(index=index)[index]["mappings"]
    assert leaf(mapping["properties"], "dns.resolved_ip")["type"] == "ip"
    assert es_client.count(index=index)["count"] == 1
    caplog.clear()
    esdb.ensure_templates(es_client, es_prefix)
    assert "out of date" not in caplog.text
