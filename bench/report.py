"""Turning repetitions into the figures, ratios and verdicts of a run, as JSON and Markdown.

Pure functions only (no I/O but `write`), so the arithmetic that decides pass or fail is unit
tested without any server. A figure is the median of its repetitions: one slow repetition (a
checkpoint, a GC pause in the broker) moves a mean but not a median.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

METRICS: tuple[str, ...] = (
    "raw_publish_eps",
    "relay_eps",
    "raw_consume_pg_eps",
    "faststream_consume_pg_eps",
    "consumer_eps",
    "raw_http_get_rps",
    "fastapi_http_get_rps",
    "http_get_rps",
    "saga_orders_per_s",
    "floor_saga_orders_per_s",
    "roles_saga_orders_per_s",
    "saga_p50_ms",
    "saga_p99_ms",
    "max_rss_mb",
)

UNITS: Mapping[str, str] = {
    "raw_publish_eps": "events/s",
    "relay_eps": "events/s",
    "raw_consume_pg_eps": "events/s",
    "faststream_consume_pg_eps": "events/s",
    "consumer_eps": "events/s",
    "raw_http_get_rps": "requests/s",
    "fastapi_http_get_rps": "requests/s",
    "http_get_rps": "requests/s",
    "saga_orders_per_s": "orders/s",
    "floor_saga_orders_per_s": "orders/s",
    "roles_saga_orders_per_s": "orders/s",
    "saga_p50_ms": "ms",
    "saga_p99_ms": "ms",
    "max_rss_mb": "MiB",
}


@dataclass(frozen=True)
class Target:
    """`numerator` (divided by `denominator` if any) must be `op` `threshold`."""

    numerator: str
    op: Literal[">=", "<="]
    threshold: float
    denominator: str | None = None

    @property
    def name(self) -> str:
        return f"{self.numerator}/{self.denominator}" if self.denominator else self.numerator


TARGETS: tuple[Target, ...] = (
    Target("relay_eps", ">=", 0.8, "raw_publish_eps"),
    Target("consumer_eps", ">=", 0.8, "raw_consume_pg_eps"),
    Target("consumer_eps", ">=", 1.0, "faststream_consume_pg_eps"),
    Target("http_get_rps", ">=", 0.8, "fastapi_http_get_rps"),
    Target("saga_orders_per_s", ">=", 0.6, "floor_saga_orders_per_s"),
    Target("saga_p99_ms", "<=", 100),
    Target("max_rss_mb", "<=", 200),
)


# Ratios that judge nothing but say where a gap comes from: the framework itself against the
# bare endpoint, all of order_svc against it, and what running each service as three processes
# (`api`, `worker`, `relay`) costs against one (`all`).
REFERENCES: tuple[tuple[str, str], ...] = (
    ("fastapi_http_get_rps", "raw_http_get_rps"),
    ("http_get_rps", "raw_http_get_rps"),
    ("roles_saga_orders_per_s", "saga_orders_per_s"),
)


def median(samples: Sequence[float]) -> float:
    if not samples:
        raise ValueError("no samples: a figure needs at least one repetition")
    return float(statistics.median(samples))


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: an observed value, never an interpolation between two."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return float(ordered[rank - 1])


def medians(repetitions: Mapping[str, Sequence[float]]) -> dict[str, float]:
    return {name: median(samples) for name, samples in repetitions.items()}


def value_of(target: Target, metrics: Mapping[str, float]) -> float:
    value = metrics[target.numerator]
    if target.denominator is None:
        return value
    denominator = metrics[target.denominator]
    # A baseline that did nothing makes any ratio meaningless: report it as failing (0).
    return value / denominator if denominator > 0 else 0.0


def ratios(metrics: Mapping[str, float]) -> dict[str, float]:
    """The targets' ratios, then the references'."""
    judged = {t.name: round(value_of(t, metrics), 4) for t in TARGETS if t.denominator}
    referenced = {
        f"{ours}/{base}": round(value_of(Target(ours, ">=", 0.0, base), metrics), 4)
        for ours, base in REFERENCES
    }
    return {**judged, **referenced}


def evaluate(metrics: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each target with the value it got and whether it is met."""
    verdicts = []
    for target in TARGETS:
        value = value_of(target, metrics)
        met = value >= target.threshold if target.op == ">=" else value <= target.threshold
        verdicts.append(
            {
                "name": target.name,
                "value": round(value, 4),
                "op": target.op,
                "threshold": target.threshold,
                "met": met,
            }
        )
    return verdicts


def build_results(
    *,
    repetitions: Mapping[str, Sequence[float]],
    maxima: Mapping[str, float],
    machine: Mapping[str, Any],
    settings: Mapping[str, Any],
    growth: Mapping[str, Any],
    hops: Mapping[str, Any],
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """The whole results document; `metrics` holds every name of METRICS, as numbers.

    `maxima` are figures that are not a median of repetitions but the largest value seen during
    the run (resident memory).
    """
    metrics = {**medians(repetitions), **maxima}
    missing = [name for name in METRICS if name not in metrics]
    if missing:
        raise ValueError(f"no measurement for {missing}")
    ordered = {name: round(float(metrics[name]), 3) for name in METRICS}
    return {
        "metrics": ordered,
        "units": {name: UNITS[name] for name in METRICS},
        "ratios": ratios(ordered),
        "targets": evaluate(ordered),
        "machine": dict(machine),
        "settings": dict(settings),
        "repetitions": {
            name: [round(s, 3) for s in samples] for name, samples in repetitions.items()
        },
        "growth": dict(growth),
        "hops": dict(hops),
        "details": dict(details),
    }


def markdown(results: Mapping[str, Any]) -> str:
    metrics: Mapping[str, float] = results["metrics"]
    repetitions: Mapping[str, Sequence[float]] = results["repetitions"]
    lines = [
        "| metric | median | unit | repetitions |",
        "| --- | ---: | --- | --- |",
    ]
    for name in METRICS:
        samples = repetitions.get(name)
        shown = ", ".join(f"{s:,.1f}" for s in samples) if samples else "max over the run"
        lines.append(f"| `{name}` | {metrics[name]:,.1f} | {UNITS[name]} | {shown} |")
    lines += ["", "| target | value | wanted | met |", "| --- | ---: | --- | --- |"]
    for verdict in results["targets"]:
        lines.append(
            f"| `{verdict['name']}` | {verdict['value']:,.3f} | {verdict['op']} "
            f"{verdict['threshold']:g} | {'yes' if verdict['met'] else '**no**'} |"
        )
    lines += ["", "| reference ratio | value |", "| --- | ---: |"]
    for ours, base in REFERENCES:
        lines.append(f"| `{ours}/{base}` | {results['ratios'][f'{ours}/{base}']:,.3f} |")
    hops = results.get("hops", {}).get("hops", [])
    if hops:
        lines += ["", hops_table(results["hops"])]
    return "\n".join(lines)


def verdicts(results: Mapping[str, Any]) -> str:
    """One line per target: met or not, with its value."""
    return "\n".join(
        f"{'met    ' if v['met'] else 'NOT MET'}  {v['name']} = {v['value']:,.3f} "
        f"(wanted {v['op']} {v['threshold']:g})"
        for v in results["targets"]
    )


def hops_table(section: Mapping[str, Any]) -> str:
    """Each hop's median and p99, whole and by part, in milliseconds."""
    lines = ["| hop | part | p50 ms | p99 ms |", "| --- | --- | ---: | ---: |"]
    for hop in section["hops"]:
        if hop["total"] is None:
            continue
        total = hop["total"]
        lines.append(
            f"| `{hop['name']}` ({hop['route']}) | **whole hop** | {total['p50_ms']:,.2f} | "
            f"{total['p99_ms']:,.2f} |"
        )
        for part, stats in hop["parts"].items():
            lines.append(f"| | {part} | {stats['p50_ms']:,.2f} | {stats['p99_ms']:,.2f} |")
    for participant in section.get("participants", []):
        branch = participant["branch"]
        if branch is None:
            continue
        lines.append(
            f"| {participant['name']}'s branch (`order.created` committed -> "
            f"`{participant['reservation']}` delivered) | came second in "
            f"{participant['later_share']:.0%} of orders | {branch['p50_ms']:,.2f} | "
            f"{branch['p99_ms']:,.2f} |"
        )
    return "\n".join(lines)


_SHORT_UNITS = {"events/s": "/s", "requests/s": "/s", "orders/s": "/s", "ms": " ms", "MiB": " MiB"}


def _amount(results: Mapping[str, Any], name: str) -> str:
    value = results["metrics"][name]
    shown = f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"
    return f"{shown}{_SHORT_UNITS[UNITS[name]]}"


def readme_table(results: Mapping[str, Any]) -> str:
    """The README's table of a reference run: every target and reference ratio, with the
    figures it divides."""
    lines = [
        "| figure | ours | baseline | ratio | target | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for verdict, target in zip(results["targets"], TARGETS, strict=True):
        met = "yes" if verdict["met"] else "**no**"
        wanted = f"{verdict['op']} {verdict['threshold']:g}"
        ours = _amount(results, target.numerator)
        if target.denominator is None:
            lines.append(f"| `{target.numerator}` | {ours} | | | {wanted} | {met} |")
            continue
        base = _amount(results, target.denominator)
        lines.append(
            f"| `{target.numerator}` / `{target.denominator}` | {ours} | {base} | "
            f"{verdict['value']:.2f} | {wanted} | {met} |"
        )
    for ours_name, base_name in REFERENCES:
        ratio = results["ratios"][f"{ours_name}/{base_name}"]
        lines.append(
            f"| reference: `{ours_name}` / `{base_name}` | {_amount(results, ours_name)} | "
            f"{_amount(results, base_name)} | {ratio:.2f} | | |"
        )
    return "\n".join(lines)


def write(results: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
