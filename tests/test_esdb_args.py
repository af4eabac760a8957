"""fpc-db command-line checks that refuse before any connection to Elasticsearch."""

import pytest

from fpc import esdb
from fpc.store import es as es_store


@pytest.fixture
def no_connection(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("fpc-db connected despite a bad command line")

    monkeypatch.setattr(es_store, "connect", refuse)


@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--days", "-3", "'-3' is not a positive number of days"),
        ("--days", "0", "'0' is not a positive number of days"),
        ("--days", "nan", "'nan' is not a positive number of days"),
        ("--days", "inf", "'inf' is not a positive number of days"),
        ("--days", "1e308", "'1e308' is more than 36500 days"),
        ("--max-gb", "-1", "'-1' is not a positive number of GiB"),
        ("--max-gb", "nan", "'nan' is not a positive number of GiB"),
        ("--max-gb", "inf", "'inf' is not a positive number of GiB"),
    ],
)
def test_expire_refuses_a_bad_limit_before_connecting(
    option, value, message, no_connection, capsys
):
    argv = ["--es", "http://127.0.0.1:9", "expire", option, value]
    with pytest.raises(SystemExit) as exit_:
        esdb.main(argv)
    assert exit_.value.code == 2
    assert f"argument {option}: {message}" in capsys.readouterr().err


def test_expire_accepts_fractions_of_days_and_gib():
    args = esdb.parse_args(
        ["--es", "http://127.0.0.1:9", "expire", "--days", "0.5", "--max-gb", "1.5"]
    )
    assert (args.days, args.max_gb) == (0.5, 1.5)


@pytest.mark.parametrize("argv", [["info"], ["expire", "--days", "30"]])
def test_es_url_of_another_scheme_is_refused_before_connecting(
    argv, no_connection, capsys
):
    with pytest.raises(SystemExit) as exit_:
        esdb.main(["--es", "ftp://x", *argv])
    assert exit_.value.code == 2
    assert "the scheme must be http or https" in capsys.readouterr().err
