"""Benchmark results out: JSON, Markdown tables, PNG bar plots, README section.

Each part writes `<part>.json`, `<part>.md` and `<part>.png` into the results
directory; a full (not --quick) run also replaces that part's table in
`bench/README.md` between its begin/end markers.
"""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

logger = logging.getLogger(__name__)

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")


def write_json(results_dir: str, part: str, data: dict) -> str:
    path = os.path.join(results_dir, f"{part}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    return path


def write_markdown(results_dir: str, part: str, table: str) -> str:
    path = os.path.join(results_dir, f"{part}.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(table)
    return path


def update_readme(part: str, table: str, readme: str = README) -> None:
    """Replace the text between `<!-- part:begin -->` and `<!-- part:end -->`."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(
        rf"(<!-- {part}:begin -->\n).*?(<!-- {part}:end -->)", re.DOTALL
    )
    if not pattern.search(text):
        logger.warning("readme has no markers for part=%s; table not inserted", part)
        return
    text = pattern.sub(lambda m: m.group(1) + table + m.group(2), text)
    with open(readme, "w", encoding="utf-8") as f:
        f.write(text)


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 0.01 else f"{value:.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def bar_plot(path: str, title: str, panels: list[tuple[str, dict[str, float]]]) -> None:
    """One bar chart per (y label, {bar label: value}) side by side, as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib missing (pip install matplotlib); no plot %s", path)
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8))
    for ax, (ylabel, bars) in zip(_as_list(axes), panels, strict=True):
        ax.bar(list(bars), list(bars.values()), color="#4878a8")
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", rotation=20)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def line_plot(
    path: str,
    title: str,
    xlabels: list[str],
    panels: list[tuple[str, bool, dict[str, list[float]]]],
) -> None:
    """Line charts over categorical x (the rates asked); (y label, log y, series)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib missing (pip install matplotlib); no plot %s", path)
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8))
    xs = list(range(len(xlabels)))
    for ax, (ylabel, log_y, series) in zip(_as_list(axes), panels, strict=True):
        for name, ys in series.items():
            ax.plot(xs, ys, "o-", label=name)
        ax.set_xticks(xs, xlabels)
        ax.set_xlabel("tcpreplay rate asked, packets/s")
        ax.set_ylabel(ylabel)
        if log_y:
            ax.set_yscale("log")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _as_list(axes: Any) -> list:
    return list(axes) if hasattr(axes, "__len__") else [axes]
