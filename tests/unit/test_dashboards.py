"""The observability profile, checked offline: Prometheus, Grafana and the committed dashboard.

A dashboard fails silently: a panel whose query names a metric nobody exports just shows "No data".
So every metric a panel queries must be one our services export (`shared/observability/metrics.py`,
read from the code) or one of RabbitMQ's, and the files must point at each other the way compose
mounts them (scrape targets, data source uid, dashboard folder).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from broker.topology import TOPOLOGY
from shared.observability.metrics import Metrics
from tests.unit.test_compose import (
    REPO_ROOT,
    environment_of,
    load_compose,
    mounted_file,
    mounts_of,
    rabbitmq_config,
)

OPS = REPO_ROOT / "ops"
DASHBOARD_FILE = OPS / "grafana" / "dashboards" / "eventful.json"
PROMETHEUS_FILE = OPS / "prometheus" / "prometheus.yml"
DATASOURCES_FILE = OPS / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_FILE = OPS / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"
PROFILE = "observability"

# Each panel the dashboard must have, and a metric its queries must use.
REQUIRED_PANELS = {
    "HTTP throughput": "http_requests_total",
    "HTTP latency (p50, p99)": "http_request_duration_seconds_bucket",
    "Events consumed by outcome": "consumer_messages_total",
    "Handler latency (p50, p99)": "consumer_handler_duration_seconds_bucket",
    "Events published": "relay_events_published_total",
    "Outbox backlog": "outbox_unpublished_events",
    "Oldest unpublished event": "outbox_oldest_unpublished_age_seconds",
    "DLQ depth": "rabbitmq_queue_messages",
    "Rate limiting": "rate_limit_storage_errors_total",
}
LATENCY_PANELS = ("HTTP latency (p50, p99)", "Handler latency (p50, p99)")

# Enough of PromQL to find the metric names in an expression: drop string literals, label
# matchers, range selectors and grouping clauses; of the identifiers left, those followed by "("
# are functions or aggregations, the rest (but keywords) are metric names.
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}
_QUEUE_REGEX = re.compile(r'queue\s*=~\s*("(?:[^"\\]|\\.)*")')


def metric_names(expression: str) -> set[str]:
    stripped = _STRINGS.sub('""', expression)
    for pattern in (_MATCHERS, _RANGES, _GROUPING):
        stripped = pattern.sub(" ", stripped)
    return {
        match.group()
        for match in _IDENTIFIER.finditer(stripped)
        if not stripped[match.end() :].lstrip().startswith("(")
        and match.group().lower() not in _KEYWORDS
    }


def exported_by_our_services() -> set[str]:
    """The sample names `shared.observability.metrics.Metrics` exposes on /metrics."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def panels(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {panel["title"]: panel for panel in dashboard["panels"]}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = load_compose()["services"]
    return loaded


def expressions(panel: dict[str, Any]) -> list[str]:
    return [target.get("expr", "") for target in panel.get("targets", [])]


def test_the_metric_name_parser_finds_metrics_and_skips_functions_labels_and_ranges() -> None:
    expression = (
        "histogram_quantile(0.99, sum by (le, route) "
        '(rate(http_request_duration_seconds_bucket{route!~"/metrics|/x"}[5m]))) '
        "/ on (job) group_left up"
    )

    assert metric_names(expression) == {"http_request_duration_seconds_bucket", "up"}


def test_dashboard_has_a_uid_and_a_title(dashboard: dict[str, Any]) -> None:
    assert dashboard.get("uid")
    assert dashboard.get("title")


def test_dashboard_has_every_required_panel(panels: dict[str, dict[str, Any]]) -> None:
    missing = [
        f"{title} ({metric})"
        for title, metric in REQUIRED_PANELS.items()
        if title not in panels
        or not any(metric in metric_names(e) for e in expressions(panels[title]))
    ]

    assert missing == []


@pytest.mark.parametrize("title", LATENCY_PANELS)
def test_latency_panels_show_the_median_and_the_99th_percentile(
    panels: dict[str, dict[str, Any]], title: str
) -> None:
    quantiles = {
        match.group(1)
        for expression in expressions(panels[title])
        for match in [re.match(r"\s*histogram_quantile\(\s*([0-9.]+)", expression)]
        if match
    }

    assert {float(q) for q in quantiles} == {0.5, 0.99}


def test_dlq_panel_selects_every_dead_letter_queue_and_nothing_else(
    panels: dict[str, dict[str, Any]],
) -> None:
    (expression,) = expressions(panels["DLQ depth"])
    literal = _QUEUE_REGEX.search(expression)
    assert literal is not None, "the DLQ panel must select queues with queue=~"
    # A PromQL double-quoted string unescapes like JSON; Prometheus anchors the regex.
    queue_regex = re.compile(json.loads(literal.group(1)))
    dead_letter_queues = [q.dead_letter_queue for q in TOPOLOGY.queues]
    other_queues = [name for q in TOPOLOGY.queues for name in (q.name, *q.retry_queues)]

    assert all(queue_regex.fullmatch(name) for name in dead_letter_queues)
    assert not any(queue_regex.fullmatch(name) for name in other_queues)


def test_every_panel_has_the_provisioned_data_source_and_a_query(
    dashboard: dict[str, Any],
) -> None:
    (datasource,) = load_yaml(DATASOURCES_FILE)["datasources"]
    wrong = [
        panel["title"]
        for panel in dashboard["panels"]
        if panel.get("datasource", {}).get("uid") != datasource["uid"]
        or not any(expr.strip() for expr in expressions(panel))
    ]

    assert wrong == []


def test_every_queried_metric_is_exported_by_our_services_or_rabbitmq(
    dashboard: dict[str, Any],
) -> None:
    known = exported_by_our_services()
    unknown = {
        f"{panel['title']}: {name}"
        for panel in dashboard["panels"]
        for expression in expressions(panel)
        for name in metric_names(expression)
        if name not in known and not name.startswith("rabbitmq_")
    }

    assert unknown == set()


def test_panel_ids_are_unique(dashboard: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in dashboard["panels"]]

    assert len(ids) == len(set(ids))


def test_prometheus_scrapes_both_services_and_rabbitmq(
    services: dict[str, dict[str, Any]],
) -> None:
    config = load_yaml(PROMETHEUS_FILE)
    targets = {
        target
        for job in config["scrape_configs"]
        if job.get("metrics_path", "/metrics") == "/metrics"
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    app_targets = {
        f"{app}:{environment_of(services[app])[f'{app.upper()}_PORT']}"
        for app in ("user_svc", "order_svc", "inventory_svc")
    }

    assert app_targets | {"rabbitmq:15692"} <= targets


def test_rabbitmq_exports_per_queue_metrics_for_prometheus(
    services: dict[str, dict[str, Any]],
) -> None:
    rabbitmq = services["rabbitmq"]
    plugins = mounted_file(rabbitmq, "/etc/rabbitmq/enabled_plugins").read_text(encoding="utf-8")

    assert "rabbitmq_prometheus" in re.findall(r"\w+", plugins)
    assert rabbitmq_config(rabbitmq).get("prometheus.return_per_object_metrics") == "true"


def test_grafana_data_source_is_compose_prometheus(services: dict[str, dict[str, Any]]) -> None:
    (datasource,) = load_yaml(DATASOURCES_FILE)["datasources"]
    url = urlsplit(datasource["url"])

    assert datasource["type"] == "prometheus"
    assert url.hostname in services
    assert "9090:9090" in " ".join(services[url.hostname].get("ports", []))
    assert url.port == 9090


def test_grafana_provisions_the_dashboard_folder_compose_mounts(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    (provider,) = load_yaml(DASHBOARD_PROVIDERS_FILE)["providers"]
    dashboards_dir = mounted_file(grafana, provider["options"]["path"])
    provisioning_dir = mounted_file(grafana, "/etc/grafana/provisioning")

    assert provider["type"] == "file"
    assert DASHBOARD_FILE.parent.resolve() == dashboards_dir.resolve()
    assert DATASOURCES_FILE.resolve().is_relative_to(provisioning_dir.resolve())
    assert DASHBOARD_PROVIDERS_FILE.resolve().is_relative_to(provisioning_dir.resolve())


def test_prometheus_reads_the_committed_config(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]

    assert "/etc/prometheus/prometheus.yml" in mounts_of(prometheus)
    assert mounted_file(prometheus, "/etc/prometheus/prometheus.yml").resolve() == PROMETHEUS_FILE


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_prometheus_and_grafana_run_only_in_the_observability_profile(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert services[name].get("profiles") == [PROFILE]


def test_the_system_itself_runs_without_a_profile(services: dict[str, dict[str, Any]]) -> None:
    profiled = [
        name
        for name in ("postgres", "rabbitmq", "user_svc", "order_svc", "inventory_svc")
        if services[name].get("profiles")
    ]

    assert profiled == []
