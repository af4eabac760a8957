"""Run by `bench_memory` in a fresh process: ingest a capture, report RSS as JSON.

Usage: python3 -m bench.memory_child CAPTURE DATA_DIR MAX_SESSIONS [on|off]

Feeds every batch of CAPTURE through an in-process `fpc.pipeline.Pipeline`
(SQLite store in DATA_DIR; application-layer parsing on or off) and prints
RSS before and after, the number of active sessions and the ingest time; the
sessions are never ended.
"""

from __future__ import annotations

import gc
import json
import sys
import time

import psutil

from fpc.config import load_config
from fpc.pipeline import Pipeline
from fpc.reader import open_capture
from fpc.store import open_store


def main(argv: list[str]) -> int:
    capture, data_dir, max_sessions = argv[0], argv[1], int(argv[2])
    app_layer = (argv[3] if len(argv) > 3 else "on") == "on"
    overrides = {
        "data_dir": data_dir,
        "sessions.max_sessions": max_sessions,
        "sessions.app_layer": app_layer,
    }
    cfg = load_config(None, overrides)
    store = open_store(cfg.data_dir)
    pipeline = Pipeline(cfg, store)
    me = psutil.Process()
    gc.collect()
    rss_start = me.memory_info().rss
    started = time.monotonic()
    with open_capture(capture) as f:
        for batch in f.batches():
            pipeline.process(batch)
    ingest_s = time.monotonic() - started
    gc.collect()
    rss_end = me.memory_info().rss
    summary = pipeline.summary()
    out = {
        "rss_start": rss_start,
        "rss_end": rss_end,
        "active_sessions": len(pipeline.sessions),
        "packets": summary["packets"],
        "evicted": summary["evicted"],
        "records": summary["records"],
        "ingest_s": ingest_s,
        **_table_facts(pipeline),
    }
    # The sessions are not ended: building and storing a million SPI records
    # takes minutes and measures nothing here; the data directory is removed.
    store.close()
    print(json.dumps(out))
    return 0


def _table_facts(pipeline: Pipeline) -> dict:
    """App-layer states held or skipped, and the table's own size estimate."""
    counters = pipeline.sessions.counters
    facts = {k: counters[k] for k in ("app_states", "app_skipped") if k in counters}
    memory = getattr(pipeline.sessions, "memory_bytes", None)
    if isinstance(memory, int):
        facts["table_memory_bytes"] = memory
    return facts


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
