"""The hops' stacked bar chart (`bench/results/hops.png`): each hop's parts, from `bench.hops`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

from bench.hops import READ

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {
    "publish": "tab:blue",
    "network": "tab:grey",
    "consume: waiting": "tab:olive",
    "consume: transaction": "tab:green",
    "request until its commit": "tab:purple",
    "request": "tab:purple",
    "response": "tab:pink",
}


def plot(section: Mapping[str, Any], path: Path, *, title: str) -> None:
    """Stacked bars of each hop's parts (medians), with each hop's own median and p99."""
    hops = [h for h in section["hops"] if h["total"] is not None]
    saga = [h for h in hops if h["name"] != READ.name]
    read = [h for h in hops if h["name"] == READ.name]
    figure, axes = plt.subplots(
        1, 2, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 1.3]}, squeeze=True
    )
    for axis, group, unit in ((axes[0], saga, "ms"), (axes[1], read, "ms")):
        labels = [f"{h['name']}\n{h['route']}" for h in group]
        seen: set[str] = set()
        for row, hop in enumerate(group):
            left = 0.0
            for name, stats in hop["parts"].items():
                width = max(stats["p50_ms"], 0.0)
                axis.barh(
                    row,
                    width,
                    left=left,
                    color=COLOURS.get(name, "tab:brown"),
                    label=None if name in seen else name,
                )
                seen.add(name)
                left += width
            total = hop["total"]
            axis.annotate(
                f" p50 {total['p50_ms']:.1f} / p99 {total['p99_ms']:.1f} {unit}",
                (left, row),
                va="center",
                fontsize=8,
            )
        axis.set_yticks(range(len(group)), labels, fontsize=8)
        axis.invert_yaxis()
        axis.set_xlabel(f"median of each part ({unit})")
        axis.margins(x=0.45)
        axis.legend(fontsize=7, loc="lower right")
        axis.grid(visible=True, axis="x", alpha=0.3)
    saga_total = section.get("saga") or {}
    axes[0].set_title(
        f"Saga hops ({section['orders']} orders; POST -> order.confirmed p50 "
        f"{saga_total.get('p50_ms', float('nan')):.1f} ms, p99 "
        f"{saga_total.get('p99_ms', float('nan')):.1f} ms)",
        fontsize=9,
    )
    branches = ", ".join(
        f"{p['name']} came second in {p['later_share']:.0%} (its branch p50 "
        f"{p['branch']['p50_ms']:.1f} ms)"
        for p in section.get("participants", [])
        if p["branch"] is not None
    )
    if branches:
        axes[0].set_xlabel(f"median of each part (ms)\nof the two participants, {branches}")
    axes[1].set_title(f"Read, one at a time ({section['reads']} requests)", fontsize=9)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
