"""Collects the app-layer field values of one session, with bounds.

In: `add(name, value)` calls from the parsers of one session. Out: the flat
dict of `fpc.appl.fields.APP_FIELDS` names the session table puts in the SPI
record. Values are de-duplicated and kept in first-seen order.
"""

from __future__ import annotations

MAX_VALUES_PER_FIELD = 64  # a field keeps its first 64 distinct values
# Fields allowed more: a multi-domain certificate names a few hundred hosts.
FIELD_LIMITS = {"tls.server.x509.alternative_names": 512}  # x509.MAX_ALT_NAMES
MAX_VALUE_CHARS = 1024  # longer strings are cut to this many characters


class FieldSink:
    """Distinct values per field name, at most MAX_VALUES_PER_FIELD each
    (FIELD_LIMITS for the fields named there).

    Distinctness is checked by a scan of the field's list, not a set beside
    it: lists are short (at most 64; 512 for certificate names, read once per
    session), and a set per field would cost more than the rest of a parsed
    session's state.
    """

    __slots__ = ("_values", "dropped")

    def __init__(self) -> None:
        self._values: dict[str, list[object]] = {}
        self.dropped = 0  # values not kept because a field was full

    def add(self, name: str, value: object) -> None:
        if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
            value = value[:MAX_VALUE_CHARS]
        values = self._values.get(name)
        if values is None:
            self._values[name] = [value]
            return
        if value in values:
            return
        if len(values) >= MAX_VALUES_PER_FIELD and len(values) >= FIELD_LIMITS.get(
            name, MAX_VALUES_PER_FIELD
        ):
            self.dropped += 1
            return
        values.append(value)

    def has(self, name: str) -> bool:
        return name in self._values

    def as_dict(self) -> dict[str, list[object]]:
        return {name: list(values) for name, values in self._values.items()}
