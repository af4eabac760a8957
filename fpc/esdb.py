"""`fpc-db`: the Elasticsearch layout of fpc, and the tool that manages it.

In: the SPI field table (`fpc.fields`). Out: versioned index templates with
explicit, strict mappings for every ES index fpc writes, plus the commands
`init`, `upgrade`, `info`, `expire` and `wipe` against a cluster. Runs in the
calling thread; `EsStore` calls `ensure_templates` when it opens.

ES indices, for prefix P:
    P-sessions-<period>  SPI records, one ES index per rotation period, all
                         under the alias P-sessions; `_id` is `event.id`
    P-files              PCAP file registry, `_id` is `<node>-<file_num>`
    P-sequence           one counter document per node for file numbers
    P-stats              periodic node stats documents
    P-nodes              one document per node
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError, helpers

from fpc.appl.fields import Field
from fpc.config import EsConfig, es_url_arg
from fpc.errors import FpcError, StoreError
from fpc.fields import FIELDS
from fpc.logsetup import setup_logging

logger = logging.getLogger(__name__)

TEMPLATE_VERSION = 1
ROTATION_FORMATS = {
    "hourly": "%Y.%m.%d.%H",
    "daily": "%Y.%m.%d",
    "weekly": "%G.w%V",
    "monthly": "%Y.%m",
}
# expire --days at most: a century (some 739,000 days puts the cutoff before
# year 1, where datetime overflows)
MAX_KEEP_DAYS = 36500
KEYWORD_IGNORE_ABOVE = 1024  # longer values are kept in _source, not indexed

FILE_PROPS = {
    "node": "keyword",
    "file_num": "long",
    "path": "keyword",
    "linktype": "integer",
    "precision": "integer",
    "first_ts_ns": "long",
    "last_ts_ns": "long",
    "size": "long",
    "packets": "long",
    "closed": "boolean",
}
SEQUENCE_PROPS = {"node": "keyword", "file_num": "long"}
NODE_PROPS = {
    "name": "keyword",
    "hostname": "keyword",
    "version": "keyword",
    "started": "date",
    "last_seen": "date",
    "data_dir": "keyword",
    "pcap_dir": "keyword",
    "pcapd_url": "keyword",
}
STATS_PROPS = {
    "packets_received": "long",
    "packets_dropped": "long",
    "bytes_per_s": "double",
    "sessions_per_s": "double",
    "active_sessions": "long",
    "pcap_bytes_written": "long",
    "disk_free_bytes": "long",
    "memory_rss_bytes": "long",
    "cpu_percent": "double",
    "indexer_queue": "long",
    "indexer_spool_bytes": "long",
}


def sessions_alias(prefix: str) -> str:
    return f"{prefix}-sessions"


def sessions_index(prefix: str, rotation: str, when: datetime) -> str:
    """ES index holding records whose @timestamp is `when` (UTC)."""
    return f"{prefix}-sessions-{when.strftime(ROTATION_FORMATS[rotation])}"


def index_period_start(prefix: str, name: str) -> datetime | None:
    """Start of the period a sessions ES index covers, from its name."""
    suffix = name.removeprefix(f"{prefix}-sessions-")
    for fmt in ROTATION_FORMATS.values():
        try:
            parsed = datetime.strptime(
                suffix + ("-1" if "w" in fmt else ""),
                fmt + ("-%u" if "w" in fmt else ""),
            )
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC)
    return None


def leaf_mapping(field: Field) -> dict[str, Any]:
    """Mapping of one field; unsearchable fields keep only their _source."""
    spec: dict[str, Any] = {"type": field.es_type}
    if not field.indexed:
        spec.update(index=False, doc_values=False)
    elif field.es_type == "keyword":
        spec["ignore_above"] = KEYWORD_IGNORE_ABOVE
    return spec


def session_properties(fields: tuple[Field, ...] = FIELDS) -> dict[str, Any]:
    """Nested `properties` tree for the SPI record fields."""
    root: dict[str, Any] = {}
    for field in fields:
        node = root
        *parents, leaf = field.name.split(".")
        for part in parents:
            child = node.setdefault(part, {"properties": {}})
            if "properties" not in child:
                raise StoreError(
                    f"field table: {field.name} nests under a leaf; "
                    "rename one of them in fpc/fields.py"
                )
            node = child["properties"]
        if leaf in node:
            raise StoreError(
                f"field table: {field.name} defined twice or as both "
                "leaf and object; fix fpc/fields.py"
            )
        node[leaf] = leaf_mapping(field)
    return root


def flat_properties(props: dict[str, str]) -> dict[str, Any]:
    return {name: {"type": es_type} for name, es_type in props.items()}


def stats_properties() -> dict[str, Any]:
    return {
        "@timestamp": {"type": "date"},
        "observer": {"properties": {"name": {"type": "keyword"}}},
        "stats": {"dynamic": False, "properties": flat_properties(STATS_PROPS)},
    }


def templates(
    prefix: str,
    version: int = TEMPLATE_VERSION,
    fields: tuple[Field, ...] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every composable index template fpc needs, by template name."""
    props = session_properties(fields) if fields else session_properties()
    shared = {"number_of_shards": 1, "auto_expand_replicas": "0-1"}
    layout = {
        "sessions": (f"{prefix}-sessions-*", props, "strict"),
        "files": (f"{prefix}-files", flat_properties(FILE_PROPS), "strict"),
        "sequence": (f"{prefix}-sequence", flat_properties(SEQUENCE_PROPS), "strict"),
        "nodes": (f"{prefix}-nodes", flat_properties(NODE_PROPS), "strict"),
        "stats": (f"{prefix}-stats", stats_properties(), "strict"),
    }
    out = {}
    for kind, (pattern, properties, dynamic) in layout.items():
        tpl: dict[str, Any] = {
            "settings": shared,
            "mappings": {"dynamic": dynamic, "properties": properties},
        }
        if kind == "sessions":
            tpl["aliases"] = {sessions_alias(prefix): {}}
        out[f"{prefix}-{kind}"] = {
            "index_patterns": [pattern],
            "template": tpl,
            "priority": 200,
            "version": version,
            "_meta": {"managed_by": "fpc", "mapping_hash": mapping_hash(tpl)},
        }
    return out


def mapping_hash(template: dict[str, Any]) -> str:
    """Fingerprint of a template's mappings, so a changed field table shows."""
    text = json.dumps(template["mappings"], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def installed_templates(es: Elasticsearch, prefix: str) -> dict[str, dict[str, Any]]:
    """Template name -> installed body (empty when missing)."""
    found: Any = {"index_templates": []}
    try:
        found = es.indices.get_index_template(name=f"{prefix}-*")
    except NotFoundError:
        pass
    got = {t["name"]: t["index_template"] for t in found["index_templates"]}
    return {name: got.get(name, {}) for name in templates(prefix)}


def installed_versions(es: Elasticsearch, prefix: str) -> dict[str, int | None]:
    """Template name -> installed version (None when missing)."""
    return {n: t.get("version") for n, t in installed_templates(es, prefix).items()}


def ensure_templates(es: Elasticsearch, prefix: str) -> None:
    """Install missing templates, add fields a changed field table brings, and
    refuse a cluster set up by a newer fpc."""
    wanted = templates(prefix)
    stale = []
    for name, tpl in installed_templates(es, prefix).items():
        version = tpl.get("version")
        if version is not None and version > TEMPLATE_VERSION:
            raise StoreError(
                f"index template {name} is version {version}, this fpc knows only "
                f"{TEMPLATE_VERSION}; upgrade fpc on this node"
            )
        want_hash = wanted[name]["_meta"]["mapping_hash"]
        if tpl and tpl.get("_meta", {}).get("mapping_hash") != want_hash:
            stale.append(name)
    init(es, prefix)
    if stale:
        logger.warning("index templates out of date names=%s; upgrading", stale)
        for problem in upgrade(es, prefix):
            logger.error("mapping upgrade failed %s; run fpc-db upgrade", problem)


def init(
    es: Elasticsearch,
    prefix: str,
    fields: tuple[Field, ...] | None = None,
    version: int = TEMPLATE_VERSION,
) -> None:
    """Install the templates where missing; ES indices appear on first write."""
    have = installed_versions(es, prefix)
    for name, body in templates(prefix, version, fields).items():
        if have[name] is None:
            es.indices.put_index_template(name=name, **body)
            logger.info("index template installed name=%s version=%d", name, version)


def create_fixed_indices(es: Elasticsearch, prefix: str) -> None:
    """Create the ES indices that are not time-rotated, so `info` lists them."""
    for kind in ("files", "sequence", "nodes", "stats"):
        if not es.indices.exists(index=f"{prefix}-{kind}"):
            try:
                es.indices.create(index=f"{prefix}-{kind}")
            except ApiError as exc:  # created meanwhile by another node
                if exc.error != "resource_already_exists_exception":
                    raise


def upgrade(es: Elasticsearch, prefix: str) -> list[str]:
    """Bring templates and existing ES indices to TEMPLATE_VERSION; keeps data.

    New fields are added to the mappings of existing ES indices; a field whose
    type changed cannot be, and is reported (the old ES indices keep the old
    type until they expire).
    """
    problems = []
    for name, body in templates(prefix).items():
        es.indices.put_index_template(name=name, **body)
        pattern = body["index_patterns"][0]
        if not es.indices.exists(index=pattern, allow_no_indices=False):
            continue
        mappings = body["template"]["mappings"]
        try:
            es.indices.put_mapping(
                index=pattern,
                properties=mappings["properties"],
                dynamic=mappings["dynamic"],
            )
        except ApiError as exc:
            problems.append(f"{pattern}: {reason_of(exc)}")
    logger.info(
        "templates upgraded prefix=%s version=%d problems=%d",
        prefix,
        TEMPLATE_VERSION,
        len(problems),
    )
    return problems


def reason_of(exc: ApiError) -> str:
    info = exc.info if isinstance(exc.info, dict) else {}
    err = info.get("error", {})
    return err.get("reason", str(exc)) if isinstance(err, dict) else str(err)


def info(es: Elasticsearch, prefix: str) -> list[str]:
    """Human-readable lines: templates, ES indices and sizes, records per day."""
    lines = [
        f"{name}: version {v if v is not None else 'missing'}"
        for name, v in installed_versions(es, prefix).items()
    ]
    rows: Any = es.cat.indices(index=f"{prefix}-*", format="json", bytes="b")
    for row in sorted(rows, key=lambda r: r["index"]):
        lines.append(
            f"{row['index']}: docs={row['docs.count']} "
            f"bytes={row['store.size']} health={row['health']}"
        )
    for day, count in records_per_day(es, prefix):
        lines.append(f"sessions {day}: {count}")
    return lines


def records_per_day(es: Elasticsearch, prefix: str) -> list[tuple[str, int]]:
    alias = sessions_alias(prefix)
    if not es.indices.exists_alias(name=alias):
        return []
    aggs = {
        "d": {
            "date_histogram": {
                "field": "@timestamp",
                "calendar_interval": "day",
                "format": "yyyy-MM-dd",
            }
        }
    }
    resp = es.search(index=alias, size=0, aggs=aggs)
    return [
        (b["key_as_string"], b["doc_count"])
        for b in resp["aggregations"]["d"]["buckets"]
    ]


def session_indices(es: Elasticsearch, prefix: str) -> list[dict[str, Any]]:
    """Sessions ES indices, oldest period first, with their size in bytes."""
    rows: Any = es.cat.indices(index=f"{prefix}-sessions-*", format="json", bytes="b")
    out = []
    for row in rows:
        start = index_period_start(prefix, row["index"])
        if start is not None:
            out.append(
                {
                    "name": row["index"],
                    "start": start,
                    "bytes": int(row["store.size"] or 0),
                }
            )
    return sorted(out, key=lambda r: r["start"])


def expire(
    es: Elasticsearch,
    prefix: str,
    days: float | None = None,
    max_bytes: int | None = None,
) -> list[str]:
    """Delete sessions ES indices older than `days` or beyond `max_bytes` total.

    The newest ES index is never deleted. Stats older than `days` go as well.
    """
    indices = session_indices(es, prefix)
    doomed: list[str] = []
    if days is not None:
        cutoff = datetime.now(UTC) - timedelta(days=days)
        doomed += [r["name"] for r in indices[:-1] if r["start"] < cutoff]
    if max_bytes is not None:
        total = sum(r["bytes"] for r in indices)
        for r in indices[:-1]:
            if total <= max_bytes:
                break
            total -= r["bytes"]
            doomed.append(r["name"])
    doomed = sorted(set(doomed))
    for name in doomed:
        es.indices.delete(index=name)
        logger.info("sessions es index expired name=%s", name)
    if days is not None:
        expire_stats(es, prefix, days)
    return doomed


def expire_stats(es: Elasticsearch, prefix: str, days: float) -> int:
    """Delete stats documents older than `days`; counts them.

    Scan and bulk delete rather than _delete_by_query, which needs the reindex
    module that minimal distributions lack.
    """
    index = f"{prefix}-stats"
    if not es.indices.exists(index=index):
        return 0
    query = {"query": {"range": {"@timestamp": {"lt": f"now-{int(days * 86400)}s"}}}}
    hits = helpers.scan(es, index=index, query=query, _source=False)
    actions = ({"_op_type": "delete", "_index": index, "_id": h["_id"]} for h in hits)
    deleted, _ = helpers.bulk(es, actions, raise_on_error=False, stats_only=True)
    return int(deleted)


def wipe(es: Elasticsearch, prefix: str) -> None:
    """Delete every fpc ES index and template of this prefix."""
    es.indices.delete(
        index=f"{prefix}-*", expand_wildcards="all", allow_no_indices=True
    )
    for name in templates(prefix):
        try:
            es.indices.delete_index_template(name=name)
        except NotFoundError:
            pass
    logger.info("fpc data wiped prefix=%s", prefix)


def add_es_args(p: argparse.ArgumentParser) -> None:
    """--es URL and its auth options, shared by every ES command."""
    p.add_argument(
        "--es", required=True, type=es_url_arg, metavar="URL", help="Elasticsearch URL"
    )
    p.add_argument("--prefix", default="fpc", help="ES index name prefix")
    p.add_argument("--username", default="")
    p.add_argument("--password", default="")
    p.add_argument("--api-key", default="")
    p.add_argument("--ca-file", default="", help="CA certificate for https")


def es_config(args: argparse.Namespace) -> EsConfig:
    return EsConfig(
        url=args.es,
        prefix=args.prefix,
        username=args.username,
        password=args.password,
        api_key=args.api_key,
        ca_file=args.ca_file,
    )


def days_arg(text: str) -> float:
    """`--days`: a positive number of days a datetime can reach back."""
    days = _positive(text, "days")
    if days > MAX_KEEP_DAYS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is more than {MAX_KEEP_DAYS} days; "
            f"give a positive number up to {MAX_KEEP_DAYS}"
        )
    return days


def max_gb_arg(text: str) -> float:
    """`--max-gb`: a positive, finite size in GiB."""
    return _positive(text, "GiB")


def _positive(text: str, unit: str) -> float:
    # refused here, before any connection: a negative --days moves the
    # cutoff into the future and deletes today's ES index
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number of {unit}; give e.g. 30"
        )
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fpc-db", description=__doc__.splitlines()[0])
    add_es_args(p)
    p.add_argument("command", choices=("init", "upgrade", "info", "expire", "wipe"))
    p.add_argument("--days", type=days_arg, help="expire: keep this many days")
    p.add_argument("--max-gb", type=max_gb_arg, help="expire: keep at most this size")
    p.add_argument("--yes-really", action="store_true", help="wipe: no question")
    args = p.parse_args(argv)
    if args.command == "expire" and args.days is None and args.max_gb is None:
        p.error("expire needs --days N or --max-gb G")
    return args


def confirm_wipe(prefix: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise StoreError(
            f"wipe deletes every {prefix}-* ES index; "
            "add --yes-really to run it without a terminal"
        )
    answer = input(f"delete every {prefix}-* ES index? type the prefix to confirm: ")
    return answer.strip() == prefix


def run(es: Elasticsearch, args: argparse.Namespace) -> list[str]:
    prefix = args.prefix
    if args.command == "init":
        init(es, prefix)
        create_fixed_indices(es, prefix)
        return [
            f"{name}: version {v}" for name, v in installed_versions(es, prefix).items()
        ]
    if args.command == "upgrade":
        return upgrade(es, prefix) or [f"upgraded to version {TEMPLATE_VERSION}"]
    if args.command == "info":
        return info(es, prefix)
    if args.command == "expire":
        max_bytes = int(args.max_gb * (1 << 30)) if args.max_gb is not None else None
        return [f"deleted {n}" for n in expire(es, prefix, args.days, max_bytes)]
    if confirm_wipe(prefix, args.yes_really):
        wipe(es, prefix)
        return [f"wiped {prefix}-*"]
    return ["not confirmed; nothing deleted"]


def main(argv: list[str] | None = None) -> int:
    from fpc.store.es import connect, translate_errors

    setup_logging()
    args = parse_args(argv)
    try:
        es = connect(es_config(args))
        with translate_errors(args.es, f"fpc-db {args.command}"):
            print("\n".join(run(es, args)))
    except FpcError as exc:
        logger.critical("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
