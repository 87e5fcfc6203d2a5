"""The benchmark's arithmetic: medians, percentiles, ratios, verdicts and the results' shape.

Pure functions only; no server and no timing is involved (the benchmark itself never runs here).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench import report

BASELINE_AND_OURS = {
    "raw_publish_eps": 1000.0,
    "relay_eps": 900.0,
    "raw_consume_pg_eps": 1000.0,
    "faststream_consume_pg_eps": 500.0,
    "consumer_eps": 700.0,
    "raw_http_get_rps": 4000.0,
    "fastapi_http_get_rps": 2500.0,
    "http_get_rps": 2000.0,
    "saga_orders_per_s": 600.0,
    "floor_saga_orders_per_s": 800.0,
    "roles_saga_orders_per_s": 540.0,
    "saga_p50_ms": 20.0,
    "saga_p99_ms": 150.0,
    "max_rss_mb": 120.0,
}


def results() -> dict[str, Any]:
    repetitions = {
        name: [value * 0.9, value, value * 1.1]
        for name, value in BASELINE_AND_OURS.items()
        if name != "max_rss_mb"
    }
    return report.build_results(
        repetitions=repetitions,
        maxima={"max_rss_mb": 120.0},
        machine={"cores": 2},
        settings={"quick": True},
        growth={"outbox_drain": {"rows": 10}},
        hops={"hops": []},
        details={},
    )


def test_median_of_odd_and_even_counts() -> None:
    assert report.median([3.0, 1.0, 2.0]) == 2.0
    assert report.median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_median_refuses_no_samples() -> None:
    with pytest.raises(ValueError, match="at least one repetition"):
        report.median([])


def test_percentile_is_an_observed_value() -> None:
    samples = [float(i) for i in range(1, 101)]
    assert report.percentile(samples, 0.5) == 50.0
    assert report.percentile(samples, 0.99) == 99.0
    assert report.percentile([7.0], 0.99) == 7.0
    assert math.isnan(report.percentile([], 0.5))


def test_ratio_targets_divide_ours_by_the_baseline() -> None:
    ratios = report.ratios(BASELINE_AND_OURS)
    assert ratios == {
        "relay_eps/raw_publish_eps": 0.9,
        "consumer_eps/raw_consume_pg_eps": 0.7,
        "consumer_eps/faststream_consume_pg_eps": 1.4,
        "http_get_rps/fastapi_http_get_rps": 0.8,
        "saga_orders_per_s/floor_saga_orders_per_s": 0.75,
        "fastapi_http_get_rps/raw_http_get_rps": 0.625,
        "http_get_rps/raw_http_get_rps": 0.5,
        "roles_saga_orders_per_s/saga_orders_per_s": 0.9,
    }


def test_each_target_is_judged_in_its_direction() -> None:
    verdicts = {v["name"]: v["met"] for v in report.evaluate(BASELINE_AND_OURS)}
    assert verdicts == {
        "relay_eps/raw_publish_eps": True,
        "consumer_eps/raw_consume_pg_eps": False,
        "consumer_eps/faststream_consume_pg_eps": True,
        "http_get_rps/fastapi_http_get_rps": True,
        "saga_orders_per_s/floor_saga_orders_per_s": True,
        "saga_p99_ms": False,
        "max_rss_mb": True,
    }


def test_a_target_exactly_at_its_threshold_is_met() -> None:
    metrics = {**BASELINE_AND_OURS, "relay_eps": 800.0, "saga_p99_ms": 100.0}
    verdicts = {v["name"]: v["met"] for v in report.evaluate(metrics)}
    assert verdicts["relay_eps/raw_publish_eps"]
    assert verdicts["saga_p99_ms"]


def test_a_baseline_of_zero_fails_its_ratio_instead_of_dividing_by_zero() -> None:
    metrics = {**BASELINE_AND_OURS, "raw_publish_eps": 0.0}
    verdicts = {v["name"]: v for v in report.evaluate(metrics)}
    assert not verdicts["relay_eps/raw_publish_eps"]["met"]


def test_results_hold_every_metric_as_a_number_at_the_top() -> None:
    document = json.loads(json.dumps(results()))
    assert list(document["metrics"]) == list(report.METRICS)
    assert all(isinstance(v, int | float) for v in document["metrics"].values())
    assert document["metrics"]["relay_eps"] == 900.0
    assert document["metrics"]["max_rss_mb"] == 120.0
    assert {"ratios", "targets", "machine", "settings", "repetitions", "growth"} <= set(document)
    assert len(document["repetitions"]["relay_eps"]) == 3


def test_results_refuse_a_missing_metric() -> None:
    with pytest.raises(ValueError, match="max_rss_mb"):
        report.build_results(
            repetitions={"relay_eps": [1.0]},
            maxima={},
            machine={},
            settings={},
            growth={},
            hops={},
            details={},
        )


def test_markdown_lists_every_metric_and_every_target() -> None:
    table = report.markdown(results())
    for name in report.METRICS:
        assert f"`{name}`" in table
    assert "| `saga_p99_ms` | 150.000 | <= 100 | **no** |" in table


def test_markdown_shows_the_reference_ratios_without_a_verdict() -> None:
    table = report.markdown(results())
    assert "| `http_get_rps/raw_http_get_rps` | 0.500 |" in table
    assert "| `roles_saga_orders_per_s/saga_orders_per_s` | 0.900 |" in table


def test_the_cost_of_splitting_the_services_into_roles_is_a_reference_not_a_target() -> None:
    judged = {v["name"] for v in report.evaluate(BASELINE_AND_OURS)}
    assert not any("roles_saga_orders_per_s" in name for name in judged)
    assert report.ratios(BASELINE_AND_OURS)["roles_saga_orders_per_s/saga_orders_per_s"] == 0.9


def test_the_readme_table_shows_each_target_with_the_figures_it_divides() -> None:
    table = report.readme_table(results())

    assert (
        "| `saga_orders_per_s` / `floor_saga_orders_per_s` | 600/s | 800/s | 0.75 | >= 0.6 | yes |"
        in table
    )
    assert "| `saga_p99_ms` | 150 ms | | | <= 100 | **no** |" in table
    assert (
        "| reference: `http_get_rps` / `raw_http_get_rps` | 2,000/s | 4,000/s | 0.50 | | |" in table
    )


@pytest.mark.parametrize("page", ["README.md", "docs/design/performance.md"])
def test_the_performance_table_is_the_committed_reference_runs(page: str) -> None:
    root = Path(__file__).resolve().parents[2]
    reference = json.loads((root / "bench/results/reference/results.json").read_text())

    assert report.readme_table(reference) in (root / page).read_text()


def test_the_hops_table_shows_each_participants_branch_and_how_often_it_came_second() -> None:
    section = {
        "hops": [],
        "participants": [
            {
                "name": "inventory_svc",
                "reservation": "inventory.stock_reserved",
                "later_share": 0.25,
                "branch": {"p50_ms": 10.0, "p99_ms": 40.0},
            }
        ],
    }

    assert report.hops_table(section).splitlines()[-1] == (
        "| inventory_svc's branch (`order.created` committed -> `inventory.stock_reserved` "
        "delivered) | came second in 25% of orders | 10.00 | 40.00 |"
    )


def test_the_performance_pages_hop_table_is_the_committed_reference_runs() -> None:
    root = Path(__file__).resolve().parents[2]
    reference = json.loads((root / "bench/results/reference/results.json").read_text())

    assert report.hops_table(reference["hops"]) in (root / "docs/design/performance.md").read_text()
