"""Config file and command-line settings: defaults, overrides, every error at once."""

import pytest

from fpc.config import (
    AUTO_BUFFER,
    fit_buffer_mb,
    load_config,
    parse_duration,
    parse_size,
)
from fpc.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "fpc.toml"
    path.write_text(text)
    return str(path)


def test_load_config_without_file_gives_defaults():
    cfg = load_config(None)
    assert cfg.capture.snaplen == 65535
    assert cfg.pcap_dir.endswith("pcap")
    assert cfg.node


def test_load_config_reads_units_and_sections(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
node = "s1"
data_dir = "/tmp/x"
[writer]
max_file_size = "2G"
max_file_time = "30m"
[sessions]
udp_timeout = "2m"
max_sessions = 5000
""",
        )
    )
    assert cfg.node == "s1"
    assert cfg.writer.max_file_size == 2 << 30
    assert cfg.writer.max_file_time == 1800
    assert cfg.sessions.udp_timeout == 120
    assert cfg.sessions.max_sessions == 5000
    assert cfg.pcap_dir == "/tmp/x/pcap"


def test_load_config_flag_overrides_file(tmp_path):
    path = write(tmp_path, 'node = "file"\n[capture]\nsnaplen = 128\n')
    cfg = load_config(path, {"node": "flag", "capture.snaplen": None})
    assert cfg.node == "flag"
    assert cfg.capture.snaplen == 128


def test_load_config_reports_every_problem_together(tmp_path):
    path = write(
        tmp_path,
        """
nod = "typo"
[capture]
snaplen = 10
promisc = "yes"
[writer]
max_file_sizes = 5
[es]
rotation = "yearly"
""",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "unknown key 'nod'" in text
    assert "[capture] snaplen = 10 is out of range; set 64 to 262144" in text
    assert "[capture] promisc = 'yes': must be true or false" in text
    assert "[writer] unknown key 'max_file_sizes'" in text
    assert "rotation = 'yearly'" in text
    assert path in text


def test_load_config_rejects_bad_node_name():
    with pytest.raises(ConfigError, match="not a valid node name"):
        load_config(None, {"node": "a/b"})


def test_load_config_missing_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*nope.toml"):
        load_config(str(tmp_path / "nope.toml"))


def test_load_config_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "node = \n"))


@pytest.mark.parametrize(
    "text,value",
    [("512M", 512 << 20), ("1g", 1 << 30), ("4096", 4096), ("64KiB", 65536)],
)
def test_parse_size_units(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize(
    "text,value", [("90s", 90), ("30m", 1800), ("1h", 3600), ("2", 2)]
)
def test_parse_duration_units(text, value):
    assert parse_duration(text) == value


def test_parse_size_rejects_garbage():
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots")


@pytest.mark.parametrize(
    "toml,shown",
    [("0", "0"), ("65", "65"), ("-1", "-1"), ("2.5", "2.5"), ('"two"', "'two'"),
     ("true", "True")],
)  # fmt: skip
def test_load_config_workers_are_auto_or_1_to_64(tmp_path, toml, shown):
    # 0 is how "auto" is kept inside; written in the file it is refused
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"[capture]\nworkers = {toml}\n"))
    expected = f'workers = {shown}: not a number from 1 to 64; give one, or "auto"'
    assert expected in str(err.value)
    path = write(tmp_path, "[capture]\nworkers = 64\n")
    assert load_config(path).capture.workers == 64


def test_load_config_wants_strings_in_quotes(tmp_path):
    path = write(tmp_path, 'node = 5\ndata_dir = 5\n[es]\nurl = ["x"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert "node = 5: must be a string in quotes, got int" in text
    assert "data_dir = 5: must be a string in quotes, got int" in text
    assert "[es] url = ['x']: must be a string in quotes, got list" in text


def test_load_config_refuses_a_binary_file(tmp_path):
    path = tmp_path / "big.pcap"
    path.write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(range(256)))
    with pytest.raises(ConfigError, match="big.pcap is not a TOML config: byte 0"):
        load_config(str(path))


def test_load_config_refuses_a_file_too_large_for_a_config(tmp_path):
    path = write(tmp_path, "# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="not a TOML config: it is over 1 MiB"):
        load_config(path)


@pytest.mark.parametrize(
    "url,problem",
    [
        ("ftp://x", "the scheme must be http or https"),
        ("127.0.0.1:9200", "the scheme must be http or https"),
        ("http://x", "there is no port"),
        ("http://:9200", "there is no host"),
        ("http://x:99999", "the port is not a number from 0 to 65535"),
    ],
)
def test_load_config_checks_the_elasticsearch_url(tmp_path, url, problem):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f'[es]\nurl = "{url}"\n'))
    assert f"[es] url = '{url}': {problem}; give it like http" in str(err.value)


def test_load_config_takes_http_and_https_elasticsearch_urls():
    for url in ("http://127.0.0.1:9200", "HTTPS://es.example", "http://[::1]:9200/"):
        assert load_config(None, {"es.url": url}).es.url == url


def test_buffer_is_auto_by_default_and_fits_the_ram_and_workers():
    assert load_config(None).capture.buffer_mb == AUTO_BUFFER
    gib = 1 << 30
    assert fit_buffer_mb(AUTO_BUFFER, 2, 24 * gib) == 256  # 384 MiB each, capped
    assert fit_buffer_mb(AUTO_BUFFER, 4, 8 * gib) == 64  # 64 MiB each
    assert fit_buffer_mb(AUTO_BUFFER, 1, 4 * gib) == 128
    assert fit_buffer_mb(AUTO_BUFFER, 8, 1 * gib) == 64  # never below 64
    assert fit_buffer_mb(300, 2, 1 * gib) == 300  # a size given is kept


@pytest.mark.parametrize("toml", ["0", "2048", "-1", "1.5", '"lots"', "true"])
def test_load_config_buffer_is_auto_or_1_to_2047(tmp_path, toml):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, f"[capture]\nbuffer_mb = {toml}\n"))
    assert 'not a number from 1 to 2047 (MiB); give one, or "auto"' in str(err.value)
    path = write(tmp_path, '[capture]\nbuffer_mb = "auto"\n')
    assert load_config(path).capture.buffer_mb == AUTO_BUFFER
    path = write(tmp_path, "[capture]\nbuffer_mb = 2047\n")
    assert load_config(path).capture.buffer_mb == 2047


def test_command_line_buffer_is_fitted_to_the_workers(monkeypatch):
    from fpc.cli import build_parser, config_from_args

    monkeypatch.delenv("FPC_CONFIG", raising=False)
    args = build_parser().parse_args(["-i", "eth1", "--workers", "2"])
    assert config_from_args(args).capture.buffer_mb == fit_buffer_mb(AUTO_BUFFER, 2)
    args = build_parser().parse_args(["-i", "eth1", "-B", "100", "--workers", "2"])
    assert config_from_args(args).capture.buffer_mb == 100
    args = build_parser().parse_args(["-i", "eth1", "-B", "auto", "--workers", "1"])
    assert config_from_args(args).capture.buffer_mb == fit_buffer_mb(AUTO_BUFFER, 1)
    for bad in ("0", "\u0666\u0664", "lots"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["-i", "eth1", "-B", bad])
