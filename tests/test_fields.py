"""The SPI field table: docs current, every emitted field documented."""

from pathlib import Path

from conftest import SAMPLES, run_pipeline
from fpc.fields import FIELDS, fields_markdown

DOCS = Path(__file__).parents[1] / "docs" / "FIELDS.md"


def leaves(record: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= leaves(value, name + ".")
        else:
            out.add(name)
    return out


def test_fields_docs_match_the_table():
    assert DOCS.read_text() == fields_markdown(), (
        "run: python -m fpc.fields > docs/FIELDS.md"
    )


def test_fields_every_emitted_field_is_documented(tmp_path):
    _summary, records, _store = run_pipeline([SAMPLES / "mixed-3000.pcap"], tmp_path)
    emitted = set().union(*(leaves(r) for r in records))
    assert emitted - {f.name for f in FIELDS} == set()
