"""Settings of every fpc process: one TOML file, overridden by command-line flags.

Read once at startup, only here, into frozen dataclasses. Every problem is
collected and reported together; unknown keys and out-of-range values are
errors (never clamped), so a typo cannot silently change what is captured.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from fpc.errors import ConfigError

NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class CaptureConfig:
    interface: str = ""
    snaplen: int = 65535
    promisc: bool = True
    buffer_mb: int = 0  # kernel buffer per worker, MiB; 0: auto (fit_buffer_mb)
    bpf: str = ""
    workers: int = 0  # processes sharing the capture (fpc.workers); 0: auto


@dataclass(frozen=True)
class WriterConfig:
    pcap_dir: str = ""  # default: <data_dir>/pcap
    max_file_size: int = 1 << 30  # bytes
    max_file_time: float = 3600.0  # seconds of packet time


@dataclass(frozen=True)
class SessionConfig:
    tcp_timeout: float = 480.0
    udp_timeout: float = 60.0
    other_timeout: float = 60.0
    tcp_close: float = 5.0
    segment_age: float = 600.0
    segment_packets: int = 10_000
    max_sessions: int = 1_000_000
    app_layer: bool = True
    # Key sessions by VLAN id too: for networks whose VLANs reuse addresses.
    # Off, the same conversation mirrored from two VLANs is one session.
    key_vlan: bool = False


@dataclass(frozen=True)
class EsConfig:
    url: str = ""  # empty: use the embedded SQLite store
    prefix: str = "fpc"
    rotation: str = "daily"
    username: str = ""
    password: str = ""
    api_key: str = ""
    ca_file: str = ""


@dataclass(frozen=True)
class Config:
    node: str = field(default_factory=lambda: default_node())
    data_dir: str = "fpc-data"
    capture: CaptureConfig = CaptureConfig()
    writer: WriterConfig = WriterConfig()
    sessions: SessionConfig = SessionConfig()
    es: EsConfig = EsConfig()

    @property
    def pcap_dir(self) -> str:
        return self.writer.pcap_dir or os.path.join(self.data_dir, "pcap")


# (section, key) -> (low, high) inclusive bounds checked at startup.
BOUNDS: dict[tuple[str, str], tuple[float, float]] = {
    ("capture", "snaplen"): (64, 262144),
    ("writer", "max_file_size"): (1 << 16, 1 << 42),
    ("writer", "max_file_time"): (1, 7 * 86400),
    ("sessions", "tcp_timeout"): (1, 86400),
    ("sessions", "udp_timeout"): (1, 86400),
    ("sessions", "other_timeout"): (1, 86400),
    ("sessions", "tcp_close"): (0, 3600),
    ("sessions", "segment_age"): (1, 86400),
    ("sessions", "segment_packets"): (10, 1_000_000),
    ("sessions", "max_sessions"): (100, 100_000_000),
}
SECTIONS = {"capture": CaptureConfig, "writer": WriterConfig,
            "sessions": SessionConfig, "es": EsConfig}  # fmt: skip
ROTATIONS = ("hourly", "daily", "weekly", "monthly")
ES_SCHEMES = ("http", "https")
ES_URL_EXAMPLE = "http://127.0.0.1:9200"
AUTO_WORKERS = 0  # `workers = "auto"`
AUTO_BUFFER = 0  # `buffer_mb = "auto"`
# "auto" gives the workers' kernel buffers together 1/32 of the RAM, from 64
# to 256 MiB each: a burst the workers cannot keep up with waits there (at
# 64 MiB each, 2 workers dropped 2-15 % of a 1 M-packet replay at 300 k
# packets/s on this 2-core VM; at 256 MiB none).
RAM_SHARE_OF_BUFFERS = 32
AUTO_BUFFER_MB = (64, 256)
BUFFER_MB_RANGE = (1, 2047)  # libpcap takes the size in bytes as a C int
MAX_WORKERS = 64
MAX_CONFIG_BYTES = 1 << 20
MAX_AUTO_LIVE = 4  # workers "auto" starts for an interface, at most
# and for capture files: each worker reads all of the input itself
# TODO: measure where more workers stop paying for their extra reading; only
# 1 and 2 workers have been measured (on 2 cores).
MAX_AUTO_OFFLINE = 2


def default_node() -> str:
    """The host name, cut to a valid node name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname().split(".")[0])
    return name[:63] or "fpc"


def fit_workers(workers: int, live: bool) -> int:
    """`workers`, or for "auto" as many as fit the machine: one per core, up
    to 4 on an interface and 2 for capture files (where every worker reads
    the whole input)."""
    if workers != AUTO_WORKERS:
        return workers
    cap = MAX_AUTO_LIVE if live else MAX_AUTO_OFFLINE
    return max(1, min(os.cpu_count() or 1, cap))


def fit_buffer_mb(buffer_mb: int, workers: int, ram_bytes: int | None = None) -> int:
    """`buffer_mb`, or for "auto" each worker's share of the RAM's 1/32,
    within AUTO_BUFFER_MB."""
    if buffer_mb != AUTO_BUFFER:
        return buffer_mb
    if ram_bytes is None:
        import psutil

        ram_bytes = psutil.virtual_memory().total
    share = (ram_bytes // RAM_SHARE_OF_BUFFERS // max(1, workers)) >> 20
    low, high = AUTO_BUFFER_MB
    return max(low, min(high, share))


def parse_size(text: str | int) -> int:
    """Bytes from '1G', '512M', '65536'."""
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a size; write e.g. 512M or 2G")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2)]


def parse_duration(text: str | float) -> float:
    """Seconds from '1h', '30m', '90s', '120'."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 30m or 1h")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


def es_url_problem(url: str) -> str:
    """Why the Elasticsearch client would refuse `url`, or "" if it is fine."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ES_SCHEMES:
        return "the scheme must be http or https"
    try:
        port = parts.port
    except ValueError:
        return "the port is not a number from 0 to 65535"
    if not parts.hostname:
        return "there is no host"
    if port is None and scheme == "http":
        return "there is no port"  # the client supplies 443 for https only
    return ""


def es_url_arg(text: str) -> str:
    """`--es URL`, checked as the config file's [es] url is."""
    problem = es_url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(
            f"{text!r}: {problem}; give it like {ES_URL_EXAMPLE}"
        )
    return text


def load_config(path: str | None, overrides: dict[str, Any] | None = None) -> Config:
    """Config from the TOML file at `path` (or defaults), then `overrides`.

    `overrides` maps "section.key" or top-level "key" to a value, as the
    command line gives them; None values are ignored.
    """
    raw: dict[str, Any] = {}
    source = path or "(command line)"
    if path:
        raw = _read_toml(path)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        section, _, key = dotted.rpartition(".")
        (raw.setdefault(section, {}) if section else raw)[key] = value
    return _build(raw, source)


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            # a capture file given by mistake would be read whole otherwise
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is not a TOML config: it is over "
            f"{MAX_CONFIG_BYTES >> 20} MiB; give the fpc.toml file"
        )
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not a TOML config: byte {exc.start} is not "
            "UTF-8 text; give the fpc.toml file"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _build(raw: dict[str, Any], source: str) -> Config:
    problems: list[str] = []
    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                problems.append(f"[{key}] must be a table")
                continue
            top[key] = _section(key, value, problems)
        elif key in ("node", "data_dir"):
            try:
                top[key] = _text(value)
            except TypeError as exc:
                problems.append(f"{key} = {value!r}: {exc}")
        else:
            problems.append(f"unknown key '{key}'")
    cfg = Config(**top)
    _validate(cfg, problems)
    if problems:
        raise ConfigError(
            f"config {source}: " + "; ".join(problems) + "; see docs/CONFIG.md"
        )
    return cfg


def _section(name: str, values: dict[str, Any], problems: list[str]) -> Any:
    cls = SECTIONS[name]
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            problems.append(f"[{name}] unknown key '{key}' (known: {', '.join(known)})")
            continue
        try:
            kwargs[key] = _coerce(name, key, value, type(getattr(cls(), key)))
        except (TypeError, ValueError) as exc:
            problems.append(f"[{name}] {key} = {value!r}: {exc}")
    return replace(cls(), **kwargs)


def _coerce(section: str, key: str, value: Any, kind: type) -> Any:
    if key == "workers":
        return _workers(value)
    if key == "buffer_mb":
        return _buffer_mb(value)
    if key == "max_file_size":
        return parse_size(value)
    if kind is float and isinstance(value, str):
        return parse_duration(value)
    if kind is bool:
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"must be a number, got {type(value).__name__}")
        return kind(value)
    return _text(value)


def _text(value: Any) -> str:
    # str() would take node = 5 as "5": a missing pair of quotes is a typo
    if not isinstance(value, str):
        raise TypeError(f"must be a string in quotes, got {type(value).__name__}")
    return value


def _workers(value: Any) -> int:
    """`workers`: "auto" or 1 to 64; 0, which stands for auto inside, is refused
    as the command line refuses it."""
    if value == "auto":
        return AUTO_WORKERS
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= MAX_WORKERS:
            return value
    raise ValueError(f'not a number from 1 to {MAX_WORKERS}; give one, or "auto"')


def _buffer_mb(value: Any) -> int:
    """`buffer_mb`: "auto" or 1 to 2047 MiB; 0, which stands for auto inside,
    is refused."""
    if value == "auto":
        return AUTO_BUFFER
    low, high = BUFFER_MB_RANGE
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    bounds = f"{low:g} to {high:g} (MiB)"
    raise ValueError(f'not a number from {bounds}; give one, or "auto"')


def _number(value: float) -> str:
    """A bound as people write it: 65536, 4096G, 86400."""
    if value >= 1 << 30 and int(value) % (1 << 30) == 0:
        return f"{int(value) >> 30}G"
    return f"{value:g}" if value < 1e6 else str(int(value))


def _validate(cfg: Config, problems: list[str]) -> None:
    if not NODE_RE.match(cfg.node):
        problems.append(
            f"node = {cfg.node!r} is not a valid node name; use 1-63 letters, "
            "digits, '.', '_' or '-'"
        )
    for (section, key), (low, high) in BOUNDS.items():
        value = getattr(getattr(cfg, section), key)
        if not low <= value <= high:
            problems.append(
                f"[{section}] {key} = {value:g} is out of range; "
                f"set {_number(low)} to {_number(high)}"
            )
    problem = es_url_problem(cfg.es.url) if cfg.es.url else ""
    if problem:
        problems.append(
            f"[es] url = {cfg.es.url!r}: {problem}; give it like {ES_URL_EXAMPLE}"
        )
    if cfg.es.rotation not in ROTATIONS:
        problems.append(
            f"[es] rotation = {cfg.es.rotation!r}; choose one of {', '.join(ROTATIONS)}"
        )
