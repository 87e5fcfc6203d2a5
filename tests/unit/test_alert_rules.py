"""The alert rules: valid, unit-tested with promtool, loaded by Prometheus, on metrics that exist.

promtool (Debian's `prometheus` package; `make test` installs it when missing) checks the rules
file and runs its unit tests (`ops/prometheus/alerts_test.yml`: for each alert, a history that
fires it and one that does not). A rule on a metric nobody exports would never fire, and
nothing else would notice, so every metric a rule names must be one a service exports or one
of RabbitMQ's.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from order_svc.app import SPEC as ORDER_SPEC
from shared.observability.metrics import Metrics
from shared.persistence.database import Database
from tests.unit.test_compose import REPO_ROOT, load_compose, mounted_file
from tests.unit.test_dashboards import exported_by_our_services, metric_names

PROMETHEUS_DIR = REPO_ROOT / "ops" / "prometheus"
RULES_FILE = PROMETHEUS_DIR / "alerts.yml"
RULES_TESTS_FILE = PROMETHEUS_DIR / "alerts_test.yml"
CONFIG_FILE = PROMETHEUS_DIR / "prometheus.yml"

REQUIRED_ALERTS = {
    "OutboxLagging": "outbox_oldest_unpublished_age_seconds",
    "DeadLettersWaiting": "rabbitmq_queue_messages",
    "EventsDeadLettered": "consumer_messages_total",
    "HandlerFailuresHigh": "consumer_messages_total",
    "HTTPServerErrors": "http_requests_total",
    "OrdersPendingTooLong": "orders_oldest_pending_age_seconds",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    if executable is None:
        pytest.fail(
            "promtool is missing: run `make test` (it installs it) or apt-get install prometheus"
        )
    return subprocess.run(
        [executable, *args], capture_output=True, text=True, timeout=60, check=False
    )


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    groups = load_yaml(RULES_FILE)["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def exported_by_order_svc_workers() -> set[str]:
    metrics = Metrics()
    ORDER_SPEC.worker_parts(
        Database("postgresql+asyncpg://nobody@127.0.0.1/none"), metrics.registry
    )
    return {family.name for family in metrics.registry.collect()}


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES_FILE))

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = promtool("test", "rules", str(RULES_TESTS_FILE))

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not(
    rules: dict[str, dict[str, Any]],
) -> None:
    fired: dict[str, list[bool]] = {}
    for case in load_yaml(RULES_TESTS_FILE)["tests"]:
        for check in case["alert_rule_test"]:
            fired.setdefault(check["alertname"], []).append(bool(check["exp_alerts"]))

    assert {name: sorted(set(outcomes)) for name, outcomes in fired.items()} == {
        name: [False, True] for name in rules
    }


def test_the_required_alerts_watch_their_metrics(rules: dict[str, dict[str, Any]]) -> None:
    for alert, metric in REQUIRED_ALERTS.items():
        assert alert in rules, f"no alert {alert}"
        assert metric in metric_names(str(rules[alert]["expr"])), f"{alert} does not use {metric}"


def test_every_metric_a_rule_uses_is_exported(rules: dict[str, dict[str, Any]]) -> None:
    exported = exported_by_our_services() | exported_by_order_svc_workers() | {"up"}
    for alert, rule in rules.items():
        for metric in metric_names(str(rule["expr"])):
            assert metric in exported or metric.startswith("rabbitmq_"), (
                f"{alert} uses {metric}, which no service exports"
            )


def test_every_alert_has_a_severity_a_summary_and_a_runbook(
    rules: dict[str, dict[str, Any]],
) -> None:
    for alert, rule in rules.items():
        assert rule["labels"]["severity"] in {"page", "ticket"}, alert
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), alert
        page, anchor = rule["annotations"]["runbook"].split("#")
        assert (REPO_ROOT / page).is_file(), f"{alert}: no {page}"
        assert f"### {alert}" in (REPO_ROOT / page).read_text(encoding="utf-8"), (
            f"{alert}: {page} has no section for it"
        )
        assert anchor == alert.lower()


def test_prometheus_loads_the_rules_and_compose_mounts_them_beside_its_config() -> None:
    prometheus = load_compose()["services"]["prometheus"]

    assert load_yaml(CONFIG_FILE)["rule_files"] == ["alerts.yml"]
    assert mounted_file(prometheus, "/etc/prometheus/alerts.yml").resolve() == RULES_FILE
    result = promtool("check", "config", str(CONFIG_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
