"""Forwarding of PCAP requests to the node that holds the packets.

A central `fpc-pcapd` (one that searches the shared Elasticsearch cluster)
serves the packets of its own node from disk; for a session captured by another
node it looks that node's `fpc-pcapd` up in the node registry and relays the
request, streaming the answer back unchanged. A relayed request carries
FORWARDED_HEADER, so a node never forwards again: no loops.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiohttp import web

from fpc.errors import FpcError, PcapUnavailable
from fpc.fields import get_path

logger = logging.getLogger(__name__)

FORWARDED_HEADER = "X-Fpc-Forwarded-By"
RELAY_TIMEOUT_S = 300
RELAYED_HEADERS = ("Content-Type", "Content-Disposition")


class SeveralNodes(FpcError):
    """A merged PCAP request whose sessions lie on more than one node."""


def remote_node(records: list[dict[str, Any]], local_node: str) -> str | None:
    """The one other node holding `records`, None if all are local.

    Raises SeveralNodes when the records span nodes: each node streams its
    own packets, so a merge across nodes is asked for one node at a time.
    """
    nodes = {get_path(r, "observer.name") for r in records}
    if nodes <= {local_node}:
        return None
    if len(nodes) > 1:
        names = ", ".join(sorted(str(n) for n in nodes))
        raise SeveralNodes(f"the sessions lie on several nodes ({names})")
    return str(nodes.pop())


def relay_target(row: dict[str, Any] | None) -> str | None:
    """Base URL of a node's fpc-pcapd from its registry row, if it has one."""
    url = (row or {}).get("pcapd_url")
    return str(url).rstrip("/") if url else None


async def relay(
    request: web.Request, base_url: str, local_node: str
) -> web.StreamResponse:
    """Send `request` to `base_url` and stream the answer back to the client."""
    if request.headers.get(FORWARDED_HEADER):
        raise PcapUnavailable(
            f"node {local_node} was asked for packets it does not hold by "
            f"{request.headers[FORWARDED_HEADER]}; check the node registry"
        )
    target = base_url + request.rel_url.path_qs
    timeout = aiohttp.ClientTimeout(total=RELAY_TIMEOUT_S)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as client:
            async with client.get(target, headers={FORWARDED_HEADER: local_node}) as up:
                resp = web.StreamResponse(status=up.status)
                for name in RELAYED_HEADERS:
                    if name in up.headers:
                        resp.headers[name] = up.headers[name]
                await resp.prepare(request)
                async for chunk in up.content.iter_chunked(1 << 16):
                    await resp.write(chunk)
                await resp.write_eof()
                logger.info("request relayed target=%s status=%d", target, up.status)
                return resp
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise PcapUnavailable(
            f"the fpc-pcapd of the node holding the packets ({base_url}) did not "
            f"answer: {exc or type(exc).__name__}; check that it runs and is reachable"
        ) from exc
