"""Growth: how the figures move as the data grows, and the plot of it.

- Draining an outbox backlog (100,000 rows in the full run): does the claim query stay
  proportional to the batch, not the table?
- Our consumer with an inbox of 1,000,000 earlier events against an empty one: does the
  idempotency key's index cost grow with history?
- Saga latency percentiles against offered load, up to and past saturation (measured by the saga
  module; only plotted here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot(growth: Mapping[str, Any], path: Path) -> None:
    sweep: Sequence[Mapping[str, Any]] = growth["saga_latency_vs_load"]["points"]
    figure, (latency, drain, inbox) = plt.subplots(
        1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [2.2, 1, 1]}
    )
    offered = [p["offered_per_s"] for p in sweep]
    for key, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99")):
        latency.plot(offered, [p[key] for p in sweep], marker="o", label=label)
    saturation = growth["saga_latency_vs_load"]["saturation_orders_per_s"]
    latency.axvline(saturation, color="grey", linestyle="--", label="closed-loop saturation")
    latency.set_yscale("log")
    latency.set_xlabel("offered load (orders/s)")
    latency.set_ylabel("POST /orders → order.confirmed (ms)")
    latency.set_title("Saga latency against offered load")
    latency.legend()
    latency.grid(visible=True, which="both", alpha=0.3)

    backlog = growth["outbox_drain"]
    points = backlog["by_backlog"]
    drain.plot(
        [p["rows"] for p in points], [p["seconds"] for p in points], marker="o", color="tab:orange"
    )
    drain.set_xlabel("outbox backlog (rows)")
    drain.set_ylabel("seconds to drain")
    drain.set_xlim(left=0)
    drain.set_ylim(bottom=0)
    drain.grid(visible=True, alpha=0.3)
    drain.set_title(
        f"Relay draining a backlog\n({backlog['rows']:,} rows at {backlog['events_per_s']:,.0f}/s)"
    )

    history = growth["inbox"]
    labels = ["empty inbox", f"{history['rows']:,} rows"]
    values = [history["empty_eps"], history["filled_eps"]]
    inbox.bar(labels, values, color=["tab:green", "tab:red"])
    inbox.set_ylabel("events/s")
    inbox.set_title("Consumer rate against inbox size")
    figure.suptitle("eventful: growth" + (" (quick run, scaled down)" if growth["quick"] else ""))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
