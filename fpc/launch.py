"""Console entry points (pyproject.toml [project.scripts]).

Loading fpc's modules (numpy, the parsers, the Elasticsearch client) takes a
few tenths of a second; a Ctrl-C then would print a traceback from deep in
some import. While they load, SIGINT ends the command at once and quietly,
with the status shells expect (130); then Python's usual handling (and each
command's own) applies.
"""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import Callable


def _exit_quietly(signum: int, _frame: object) -> None:
    os._exit(128 + signum)  # nothing has started that would need cleaning up


def _run(module: str) -> int:
    previous = signal.signal(signal.SIGINT, _exit_quietly)
    main: Callable[[], int] = importlib.import_module(module).main
    signal.signal(signal.SIGINT, previous)
    return main()


def capture() -> int:
    return _run("fpc.cli")


def pcapd() -> int:
    return _run("fpc.server")


def es() -> int:
    return _run("fpc.esnode")


def db() -> int:
    return _run("fpc.esdb")


def stats() -> int:
    return _run("fpc.nodestats")
