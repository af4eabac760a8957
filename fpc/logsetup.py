"""Logging set-up for fpc's commands: the only place that installs handlers.

Library modules only call `logging.getLogger(__name__)`; each command's main()
calls `setup_logging` once, so every line carries the same format.
"""

from __future__ import annotations

import logging
import sys


def setup_logging(verbose: int = 0, node: str | None = None) -> None:
    """Log `fpc.*` to stderr at INFO (DEBUG with `verbose`), with the node name."""
    where = f" node={node}" if node else ""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s{where} %(name)s: %(message)s")
    )
    root = logging.getLogger("fpc")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 0 else logging.INFO)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
