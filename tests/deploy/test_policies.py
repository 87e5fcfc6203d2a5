"""The rules the rendered overlays keep (deploy.policies), and that each rule catches a breach."""

from __future__ import annotations

import copy
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

import pytest

from deploy import policies
from deploy.manifests import Manifest, containers
from shared.runtime.roles import Role
from shared.runtime.server import SHUTDOWN_DEADLINE_SECONDS
from tests.deploy.conftest import of_kind


def names_read(package: str) -> frozenset[str]:
    return policies.setting_names(policies.service_settings(package))


def with_change(manifest: Manifest, change: Callable[[dict[str, Any]], None]) -> list[Manifest]:
    document = copy.deepcopy(manifest.document)
    change(document)
    return [Manifest(manifest.overlay, manifest.source, document)]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    return next(m for m in manifests if m.kind == kind and m.name == name)


def app_container(document: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = document["spec"]["template"]["spec"]["containers"][0]
    return container


# --- containers --------------------------------------------------------------------------------


def container_findings(manifests: list[Manifest], where: str) -> list[str]:
    return [str(f) for f in policies.container_rules(manifests) if where in f.path]


def test_every_container_runs_non_root_without_escalation_or_capabilities(
    overlay: list[Manifest],
) -> None:
    assert container_findings(overlay, "securityContext") == []


def test_every_container_has_a_read_only_root_filesystem(overlay: list[Manifest]) -> None:
    assert container_findings(overlay, "readOnlyRootFilesystem") == []


def test_every_container_has_cpu_and_memory_requests_and_limits(overlay: list[Manifest]) -> None:
    assert container_findings(overlay, "resources") == []


def test_every_long_running_container_has_liveness_and_readiness_probes(
    overlay: list[Manifest],
) -> None:
    assert container_findings(overlay, "Probe") == []


def test_every_container_has_a_prestop_hook(overlay: list[Manifest]) -> None:
    assert container_findings(overlay, "preStop") == []


def test_grace_period_outlasts_the_prestop_hook_and_the_shutdown_deadline(
    overlay: list[Manifest],
) -> None:
    assert container_findings(overlay, "terminationGracePeriodSeconds") == []


def test_a_container_that_may_write_its_root_filesystem_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    api = named(rendered["prod"], "Deployment", "user-svc-api")
    bad = with_change(
        api, lambda d: app_container(d)["securityContext"].pop("readOnlyRootFilesystem")
    )

    [finding] = policies.container_rules(bad)

    assert finding.path == "spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem"
    assert finding.file.endswith("base/service/api.yaml")


def test_a_grace_period_within_the_shutdown_deadline_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    worker = named(rendered["prod"], "Deployment", "order-svc-worker")

    def shorten(document: dict[str, Any]) -> None:
        document["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = int(
            SHUTDOWN_DEADLINE_SECONDS
        )

    [finding] = policies.container_rules(with_change(worker, shorten))

    assert finding.path == "spec.template.spec.terminationGracePeriodSeconds"


# --- broker and databases ------------------------------------------------------------------------


def test_rabbitmq_runs_an_odd_number_of_at_least_three_nodes(
    rendered: dict[str, list[Manifest]],
) -> None:
    [cluster] = of_kind(rendered["prod"], "RabbitmqCluster")

    assert policies.broker_replicas([cluster]) == []
    assert cluster.document["spec"]["replicas"] == 3


@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_an_even_or_too_small_rabbitmq_cluster_is_refused(
    rendered: dict[str, list[Manifest]], replicas: int
) -> None:
    [cluster] = of_kind(rendered["prod"], "RabbitmqCluster")
    bad = with_change(cluster, lambda d: d["spec"].update(replicas=replicas))

    assert [f.path for f in policies.broker_replicas(bad)] == ["spec.replicas"]


def test_every_queue_is_a_quorum_queue(overlay: list[Manifest]) -> None:
    assert [str(f) for f in policies.quorum_queues(overlay)] == []


def test_prod_declares_every_queue_as_a_quorum_queue_resource(
    rendered: dict[str, list[Manifest]],
) -> None:
    queues = of_kind(rendered["prod"], "Queue")

    assert len(queues) == 18  # 3 services: each queue, its DLQ and 4 delay queues
    assert {q.document["spec"]["type"] for q in queues} == {"quorum"}


def test_a_classic_queue_in_the_dev_definitions_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    [config] = [
        c for c in of_kind(rendered["dev"], "ConfigMap") if "definitions.json" in c.document["data"]
    ]
    bad = with_change(
        config,
        lambda d: d["data"].update(
            {"definitions.json": d["data"]["definitions.json"].replace('"quorum"', '"classic"', 1)}
        ),
    )

    [finding] = policies.quorum_queues(bad)

    assert finding.path == "data.definitions.json: queues[0].arguments.x-queue-type"


def test_every_postgresql_cluster_has_three_instances_and_a_synchronous_standby(
    rendered: dict[str, list[Manifest]],
) -> None:
    clusters = of_kind(rendered["prod"], "Cluster")

    assert sorted(c.name for c in clusters) == ["inventory-svc-db", "order-svc-db", "user-svc-db"]
    assert policies.database_replication(clusters) == []


def test_a_cluster_without_synchronous_replication_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    cluster = named(rendered["prod"], "Cluster", "user-svc-db")

    def weaken(document: dict[str, Any]) -> None:
        document["spec"]["instances"] = 2
        del document["spec"]["postgresql"]["synchronous"]

    paths = [f.path for f in policies.database_replication(with_change(cluster, weaken))]

    assert paths == ["spec.instances", "spec.postgresql.synchronous.number"]


def test_services_reach_their_database_through_its_read_write_service(
    overlay: list[Manifest],
) -> None:
    for app in policies.app_containers(overlay):
        url = app.env_value(f"{app.package.upper()}_DATABASE_URL") or ""
        assert f"@{app.package.replace('_', '-')}-db-rw:5432/" in url, app.manifest.name


def test_topology_resources_are_what_broker_topology_declares(overlay: list[Manifest]) -> None:
    assert [str(f) for f in policies.topology_matches_code(overlay)] == []


def test_a_missing_binding_is_found(rendered: dict[str, list[Manifest]]) -> None:
    manifests = [
        m
        for m in rendered["prod"]
        if not (
            m.kind == "Binding"
            and m.document["spec"]["routingKey"] == "order.created"
            and m.document["spec"]["destination"] == "user_svc.events"
        )
    ]

    [finding] = policies.topology_matches_code(manifests)

    assert "binding events -> user_svc.events [order.created]" in finding.message


def test_a_permission_wider_than_the_account_allows_is_found(
    rendered: dict[str, list[Manifest]],
) -> None:
    permission = named(rendered["prod"], "Permission", "order-svc-eventful")
    others = [m for m in rendered["prod"] if m is not permission]
    wider = with_change(permission, lambda d: d["spec"]["permissions"].update(configure=".*"))

    [finding] = policies.topology_matches_code(others + wider)

    assert finding.file.endswith("overlays/prod/topology/order_svc.yaml")


# --- settings, probes, routes --------------------------------------------------------------------


def test_every_environment_variable_is_a_setting_the_service_reads(
    overlay: list[Manifest],
) -> None:
    assert [str(f) for f in policies.settings_are_read(overlay, names_read)] == []


def test_settings_are_derived_from_the_settings_classes_with_their_aliases() -> None:
    names = policies.setting_names(policies.service_settings("order_svc"))

    assert {"ORDER_SVC_DATABASE_URL", "AMQP_URL", "JWKS_URL", "DATABASE_POOL_SIZE"} <= names
    assert "JWKS_URL_OVERRIDE" not in names


def test_an_environment_variable_no_setting_reads_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    api = named(rendered["prod"], "Deployment", "order-svc-api")
    bad = with_change(
        api, lambda d: app_container(d)["env"].append({"name": "ORDER_SVC_PROT", "value": "1"})
    )

    [finding] = policies.settings_are_read(bad, names_read)

    assert "ORDER_SVC_PROT is not a setting order_svc reads" in finding.message


def test_a_part_defined_after_the_setting_built_from_it_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    relay = named(rendered["dev"], "Deployment", "user-svc-relay")

    def reorder(document: dict[str, Any]) -> None:
        env = app_container(document)["env"]
        env.append(env.pop(0))  # AMQP_USERNAME now comes after AMQP_URL

    findings = policies.settings_are_read(with_change(relay, reorder), names_read)

    assert ["$(AMQP_USERNAME) must be defined before AMQP_URL" in f.message for f in findings] == [
        True
    ]


def test_probes_match_the_ports_and_paths_each_role_serves(overlay: list[Manifest]) -> None:
    assert [str(f) for f in policies.probes_match_roles(overlay)] == []


def test_every_service_runs_each_role_with_its_own_argument(overlay: list[Manifest]) -> None:
    roles = {(app.package, app.role, app.manifest.kind) for app in policies.app_containers(overlay)}

    assert roles == {
        (package, role, "Job" if role == "migrate" else "Deployment")
        for package in ("user_svc", "order_svc", "inventory_svc")
        for role in ("api", "worker", "relay", "migrate")
    }


def test_every_container_of_the_image_names_a_real_module_and_role(
    overlay: list[Manifest],
) -> None:
    arguments = [
        container["args"]
        for workload in policies.workloads(overlay)
        for _, container in containers(workload.document)
        if policies.runs_service_image(container)
    ]

    assert len(arguments) == 12  # 3 services, 4 roles
    for module, role in arguments:
        assert find_spec(f"{module}.__main__") is not None, module
        assert role in set(Role), role
    assert [str(f) for f in policies.service_arguments(overlay)] == []


def test_every_service_runs_the_one_image(overlay: list[Manifest]) -> None:
    images = {app.container["image"] for app in policies.app_containers(overlay)}

    assert len(images) == 1


@pytest.mark.parametrize(
    "image",
    [
        "eventful",
        "eventful:0.1.0",
        "registry.example.com:5000/team/eventful:1.2",
        "eventful@sha256:0",
    ],
)
def test_the_image_is_recognised_from_any_registry_at_any_tag(image: str) -> None:
    assert policies.runs_service_image({"image": image})


@pytest.mark.parametrize("image", ["eventful-service:0.1.0", "postgres:16", "team/eventfully"])
def test_another_image_is_not_the_services(image: str) -> None:
    assert not policies.runs_service_image({"image": image})


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"args": ["worker"]}, "args", "must be [<service>, <role>], is ['worker']"),
        ({"args": ["order_svcc", "worker"]}, "args[0]", "order_svcc is not a service"),
        ({"args": ["order_svc", "consumer"]}, "args[1]", "consumer is not a role of order_svc"),
        ({"command": ["python", "-m", "order_svc"]}, "command", "replaces the image's entrypoint"),
    ],
    ids=["no module", "misspelt module", "unknown role", "command"],
)
def test_a_container_of_the_image_that_runs_no_service_role_is_refused(
    rendered: dict[str, list[Manifest]], change: dict[str, list[str]], path: str, message: str
) -> None:
    worker = named(rendered["prod"], "Deployment", "order-svc-worker")
    bad = with_change(worker, lambda d: app_container(d).update(change))

    [finding] = policies.service_arguments(bad)

    assert finding.path == f"spec.template.spec.containers[0].{path}"
    assert message in finding.message
    assert finding.file.endswith("base/service/worker.yaml")
    assert list(policies.app_containers(bad)) == []


def test_a_worker_probed_on_the_service_port_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    worker = named(rendered["prod"], "Deployment", "user-svc-worker")
    bad = with_change(
        worker, lambda d: app_container(d)["readinessProbe"]["httpGet"].update(port=8000)
    )

    [finding] = policies.probes_match_roles(bad)

    assert finding.path == "spec.template.spec.containers[0].readinessProbe.httpGet"


def test_ingress_routes_every_openapi_path_to_its_own_service(overlay: list[Manifest]) -> None:
    assert [str(f) for f in policies.ingress_matches_openapi(overlay)] == []


def test_a_path_routed_to_the_wrong_service_is_refused(
    rendered: dict[str, list[Manifest]],
) -> None:
    ingress = named(rendered["prod"], "Ingress", "eventful")
    others = [m for m in rendered["prod"] if m is not ingress]

    def misroute(document: dict[str, Any]) -> None:
        for entry in document["spec"]["rules"][0]["http"]["paths"]:
            if entry["path"] == "/orders":
                entry["backend"]["service"]["name"] = "user-svc-api"

    messages = [
        f.message for f in policies.ingress_matches_openapi(others + with_change(ingress, misroute))
    ]

    assert any("/orders matches no path of user_svc" in m for m in messages)
    assert any("order_svc's /orders is not routed to it" in m for m in messages)


# --- shape of the overlays -----------------------------------------------------------------------


def test_dev_runs_one_replica_of_everything(rendered: dict[str, list[Manifest]]) -> None:
    dev = rendered["dev"]

    assert {
        m.document["spec"].get("replicas", 1)
        for m in dev
        if m.kind in {"Deployment", "StatefulSet"}
    } == {1}
    assert of_kind(dev, "HorizontalPodAutoscaler") == []


def test_dev_needs_no_operator(rendered: dict[str, list[Manifest]]) -> None:
    groups = {m.document["apiVersion"].split("/")[0] for m in rendered["dev"]}

    assert not groups & {"rabbitmq.com", "postgresql.cnpg.io", "keda.sh"}


def test_prod_commits_no_secret(rendered: dict[str, list[Manifest]]) -> None:
    assert of_kind(rendered["prod"], "Secret") == []


def test_each_api_is_scaled_on_cpu_by_an_autoscaler(rendered: dict[str, list[Manifest]]) -> None:
    targets = {
        hpa.document["spec"]["scaleTargetRef"]["name"]
        for hpa in of_kind(rendered["prod"], "HorizontalPodAutoscaler")
    }

    assert targets == {"user-svc-api", "order-svc-api", "inventory-svc-api"}


def test_each_worker_is_scaled_by_keda_on_its_queue_through_the_management_api(
    rendered: dict[str, list[Manifest]],
) -> None:
    scalers = {
        s.document["spec"]["scaleTargetRef"]["name"]: s.document["spec"]["triggers"]
        for s in of_kind(rendered["prod"], "ScaledObject")
    }
    [authentication] = of_kind(rendered["prod"], "TriggerAuthentication")

    assert set(scalers) == {"user-svc-worker", "order-svc-worker", "inventory-svc-worker"}
    for worker, [trigger] in scalers.items():
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["protocol"] == "http"
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["metadata"]["queueName"] == worker.replace("-worker", ".events").replace(
            "-", "_"
        )
        assert trigger["authenticationRef"]["name"] == authentication.name


def test_every_role_has_a_disruption_budget(overlay: list[Manifest]) -> None:
    budgets = {m.name for m in of_kind(overlay, "PodDisruptionBudget")}

    assert budgets == {
        f"{service}-{role}"
        for service in ("user-svc", "order-svc", "inventory-svc")
        for role in ("api", "worker", "relay")
    }


def test_only_the_api_pods_admit_traffic_from_the_ingress_controller(
    overlay: list[Manifest],
) -> None:
    admitting = {
        policy.name
        for policy in of_kind(overlay, "NetworkPolicy")
        for rule in policy.document["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "ingress-nginx" in str(peer.get("namespaceSelector"))
    }

    assert admitting == {"user-svc-api", "order-svc-api", "inventory-svc-api"}


def test_every_service_pod_is_under_a_policy_that_limits_its_egress(
    overlay: list[Manifest],
) -> None:
    egress = [
        p.document["spec"]["podSelector"]
        for p in of_kind(overlay, "NetworkPolicy")
        if "Egress" in p.document["spec"].get("policyTypes", [])
    ]
    for app in policies.app_containers(overlay):
        labels = app.manifest.document["spec"]["template"]["metadata"]["labels"]
        assert any(_selects(selector, labels) for selector in egress), app.manifest.name


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    return all(
        labels.get(e["key"]) in e["values"]
        for e in selector.get("matchExpressions", [])
        if e["operator"] == "In"
    )


def secrets_read(manifests: list[Manifest]) -> set[str]:
    """Every Secret a workload's pods read, through env or a volume."""
    names = set()
    for workload in policies.workloads(manifests):
        spec = workload.document["spec"]["template"]["spec"]
        for container in spec["containers"]:
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    names.add(ref["name"])
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
    return names


def test_dev_holds_every_secret_its_pods_read(rendered: dict[str, list[Manifest]]) -> None:
    dev = rendered["dev"]

    assert secrets_read(dev) <= {m.name for m in of_kind(dev, "Secret")}


def test_prod_pods_read_only_secrets_the_operators_write_and_the_signing_key(
    rendered: dict[str, list[Manifest]],
) -> None:
    written_by_operators = {
        f"{cluster.name}-app" for cluster in of_kind(rendered["prod"], "Cluster")
    } | {f"{user.name}-user-credentials" for user in of_kind(rendered["prod"], "User")}

    assert secrets_read(rendered["prod"]) == written_by_operators - {"keda-user-credentials"} | {
        "user-svc-token-key"
    }


def test_user_svc_api_reads_the_administrators_from_its_settings_config_map(
    overlay: list[Manifest],
) -> None:
    api = app_container(named(overlay, "Deployment", "user-svc-api").document)
    [admins] = [e for e in api["env"] if e["name"] == "ADMIN_EMAILS"]
    reference = admins["valueFrom"]["configMapKeyRef"]
    [settings] = [c for c in of_kind(overlay, "ConfigMap") if c.name == reference["name"]]

    assert reference["key"] == "ADMIN_EMAILS"
    assert reference["key"] in settings.document["data"]


@pytest.mark.parametrize("verifier", ["order-svc", "inventory-svc"])
def test_user_svc_api_admits_each_verifying_api_to_fetch_the_token_keys(
    overlay: list[Manifest], verifier: str
) -> None:
    policy = named(overlay, "NetworkPolicy", "user-svc-api")
    admitted = [
        expression["values"]
        for rule in policy.document["spec"]["ingress"]
        for peer in rule.get("from", [])
        for expression in peer.get("podSelector", {}).get("matchExpressions", [])
        if expression["key"] == "app.kubernetes.io/name"
    ]

    assert any(verifier in values for values in admitted)
