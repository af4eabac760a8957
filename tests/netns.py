"""Test networks for the live-capture tests: a veth pair with one end in a netns.

`create_veth_pair()` is a context manager for scripts; the `veth_pair` and
`netns_required` fixtures wrap it for pytest. The host end stays in the test's
own namespace, where fpc captures; the peer end sits in a fresh namespace,
where tcpreplay sends (run through `VethPair.run_in_netns`). Nothing else is
attached: no addresses, IPv6 disabled on both ends, so the kernel sends no
chatter and every packet seen on the host end is one the test sent. Everything
is removed afterwards, also when the test fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

logger = logging.getLogger(__name__)

NAME_PREFIX = "fpcv"  # every interface and namespace the tests create starts so
VETH_MTU = 65535  # the most veth takes: tcpreplay may send frames of any size
COMMAND_TIMEOUT_S = 10


class NetnsUnavailable(Exception):
    """This machine cannot build a test network (not root, no `ip netns`)."""


@dataclass(frozen=True)
class VethPair:
    """A veth pair: `host` in our namespace, `peer` inside namespace `netns`."""

    host: str
    peer: str
    netns: str

    def netns_command(self, *argv: str) -> list[str]:
        """`argv` prefixed so that it runs inside the pair's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run_in_netns(
        self, *argv: str, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the namespace; raise with its output if it fails."""
        return _run(self.netns_command(*argv), timeout_s)


def _run(
    argv: list[str], timeout_s: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"command {' '.join(argv)!r} failed with status {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result


def check_netns_available() -> None:
    """Raise NetnsUnavailable with the reason when veth pairs cannot be built."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("live tests need root to create veth pairs")
    try:
        _run(["ip", "netns", "list"])
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        raise NetnsUnavailable(f"'ip netns' does not work here: {exc}") from exc


def _disable_ipv6(argv_prefix: list[str], interface: str) -> None:
    key = f"net.ipv6.conf.{interface}.disable_ipv6=1"
    _run([*argv_prefix, "sysctl", "-q", "-w", key])


def _create(pair: VethPair) -> None:
    _run(["ip", "netns", "add", pair.netns])
    _run(
        ["ip", "link", "add", pair.host, "mtu", str(VETH_MTU), "type", "veth"]
        + ["peer", "name", pair.peer, "mtu", str(VETH_MTU), "netns", pair.netns]
    )
    # IPv6 goes off before the links come up, so no router solicitation or
    # duplicate address detection packet is ever sent.
    _disable_ipv6([], pair.host)
    _disable_ipv6(pair.netns_command(), pair.peer)

    _run(["ip", "link", "set", pair.host, "up"])
    _run(pair.netns_command("ip", "link", "set", pair.peer, "up"))
    _run(pair.netns_command("ip", "link", "set", "lo", "up"))


def _remove(pair: VethPair) -> None:
    # Deleting the namespace deletes the peer end and with it the host end;
    # the explicit link delete covers a pair whose peer never got moved there.
    for argv in (["ip", "link", "del", pair.host], ["ip", "netns", "del", pair.netns]):
        with contextlib.suppress(RuntimeError, OSError, subprocess.TimeoutExpired):
            _run(argv)


@contextlib.contextmanager
def create_veth_pair() -> Iterator[VethPair]:
    """Create a veth pair with unique names, yield it, and always remove it."""
    check_netns_available()
    remove_orphans()
    tag = secrets.token_hex(3)
    pair = VethPair(
        host=f"{NAME_PREFIX}{tag}h",
        peer=f"{NAME_PREFIX}{tag}p",
        netns=f"{NAME_PREFIX}{tag}-{os.getpid()}",
    )
    try:
        _create(pair)
        logger.debug("veth pair created host=%s peer=%s netns=%s", *_names(pair))
        yield pair
    finally:
        _remove(pair)
        logger.debug("veth pair removed host=%s peer=%s netns=%s", *_names(pair))


def remove_orphans() -> None:
    """Remove test namespaces (and their veth pairs) whose creator has died.

    A test run killed by a signal never reaches its cleanup; its namespace
    name ends in the creator's pid, so the next run can tell it is orphaned.
    """
    listing = _run(["ip", "netns", "list"]).stdout
    for match in _ORPHAN_CANDIDATE.finditer(listing):
        if not _pid_alive(int(match.group("pid"))):
            logger.debug("orphaned test netns removed netns=%s", match.group(0))
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                _run(["ip", "netns", "del", match.group(0)])


_ORPHAN_CANDIDATE = re.compile(rf"^{NAME_PREFIX}[0-9a-f]{{6}}-(?P<pid>\d+)", re.M)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _names(pair: VethPair) -> tuple[str, str, str]:
    return pair.host, pair.peer, pair.netns


@pytest.fixture
def netns_required() -> None:
    """Skip the test, with the reason, when no test network can be built."""
    try:
        check_netns_available()
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def veth_pair(netns_required: None) -> Iterator[VethPair]:
    """A fresh veth pair for one test; removed when the test ends."""
    with create_veth_pair() as pair:
        yield pair
