"""The rules the rendered manifests must keep, beyond what the schemas can say.

Each rule takes every rendered resource of an overlay and returns a `Finding` per breach:

- `container_rules`: every container runs non-root on a read-only root filesystem, without
  privilege escalation or capabilities, with requests and limits, a preStop hook, liveness and
  readiness probes (not for a Job, which runs to completion), and a grace period longer than
  the preStop hook plus the services' own shutdown deadline.
- `broker_replicas`: a RabbitMQ cluster has an odd number of nodes, at least 3, so its quorum
  queues keep a majority with a node down.
- `quorum_queues`: every queue is a quorum queue (replicated), in either overlay.
- `database_replication`: every PostgreSQL cluster has at least 3 instances and at least one
  synchronous standby, so a failover loses no acknowledged write.
- `topology_matches_code`: the broker set-up the manifests declare is what `broker.topology`
  and `broker.accounts` declare.
- `settings_are_read`: every environment variable of a service's container is one of its
  settings (derived from its pydantic settings class, aliases included), or a part that a
  setting's value is built from with `$(NAME)` (defined before it, as Kubernetes requires).
- `probes_match_roles`: each role is probed where it serves: `api` on the service port
  (`<SERVICE>_PORT`), `worker` and `relay` on `OPS_PORT`; liveness `/healthz`, readiness `/readyz`.
- `ingress_matches_openapi`: the Ingress routes every path of each service's OpenAPI document
  to that service's API, and nothing else (never the health, readiness or metrics routes).
- `service_arguments`: every container of the system's image names a service and one of its
  roles as its args, and keeps the image's entrypoint.

A service's container is recognised by its image, `eventful` (the repository's Dockerfile), from
any registry and at any tag. The image's entrypoint is `python -m`, so the container's args are
the service's package and its role: `["order_svc", "worker"]`.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from fastapi import FastAPI
from pydantic import AliasChoices, AliasPath

from broker.accounts import SERVICE_ACCOUNTS, permissions, topic_permissions
from broker.definitions import development_definitions
from broker.k8s import queue_declarations, resource_name
from broker.topology import TOPOLOGY, Topology
from deploy.manifests import POD_SPEC_PATH, Document, Finding, Manifest, containers, pod_spec
from shared.runtime.roles import Role
from shared.runtime.server import SHUTDOWN_DEADLINE_SECONDS
from shared.settings import ServiceSettings

Rule = Callable[[Sequence[Manifest]], list[Finding]]

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})
RUN_TO_COMPLETION_KINDS = frozenset({"Job"})
REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

# The one image every service runs, its entrypoint `python -m`. Every service has a broker
# account, so the accounts name the packages a container may run.
SERVICE_IMAGE = "eventful"
SERVICE_PACKAGES = tuple(account.service for account in SERVICE_ACCOUNTS)
ROLES = tuple(role.value for role in Role)

# Where each role serves /healthz and /readyz (issue 11's process roles): the API on the
# service's port, the worker and the relay on a small HTTP port of their own.
ROLE_PORT_SETTING = {
    "all": "{SERVICE}_PORT",
    "api": "{SERVICE}_PORT",
    "worker": "OPS_PORT",
    "relay": "OPS_PORT",
}
LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
# Served by every process for the platform, never through the Ingress.
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


# --- reading the manifests --------------------------------------------------------------------


@dataclass(frozen=True)
class AppContainer:
    """A container running one of the services: the system's image, args `[<package>, <role>]`."""

    manifest: Manifest
    path: str
    container: Document
    package: str
    role: str

    def env(self) -> list[Document]:
        return list(self.container.get("env", []))

    def env_value(self, name: str) -> str | None:
        for entry in self.env():
            if entry.get("name") == name and "value" in entry:
                return str(entry["value"])
        return None


def app_containers(manifests: Iterable[Manifest]) -> Iterator[AppContainer]:
    """Each container that runs a service: the system's image with a service and a role as its
    args (`service_arguments` reports the containers of the image that have neither)."""
    for manifest in manifests:
        for path, container in containers(manifest.document):
            if runs_service_image(container) and _arguments_problem(container) is None:
                package, role = (str(arg) for arg in container["args"])
                yield AppContainer(manifest, path, container, package=package, role=role)


def runs_service_image(container: Document) -> bool:
    """Whether a container runs the system's image, from whichever registry, at whatever tag."""
    reference = str(container.get("image", "")).split("@", 1)[0]
    return reference.rsplit("/", 1)[-1].split(":", 1)[0] == SERVICE_IMAGE


def _arguments_problem(container: Document) -> tuple[str, str] | None:
    """Where and why a container of the system's image does not run a service's role."""
    if "command" in container:
        return "command", "replaces the image's entrypoint (`python -m`): give only args"
    match [str(arg) for arg in container.get("args", [])]:
        case [package, role]:
            if package not in SERVICE_PACKAGES:
                return "args[0]", f"{package} is not a service ({', '.join(SERVICE_PACKAGES)})"
            if role not in ROLES:
                return "args[1]", f"{role} is not a role of {package} ({', '.join(ROLES)})"
            return None
        case args:
            return "args", f"must be [<service>, <role>], is {args}"


def workloads(manifests: Iterable[Manifest]) -> Iterator[Manifest]:
    return (m for m in manifests if m.kind in WORKLOAD_KINDS and pod_spec(m.document))


# --- container rules ---------------------------------------------------------------------------


def container_rules(manifests: Sequence[Manifest]) -> list[Finding]:
    findings: list[Finding] = []
    app_paths = {(id(c.manifest), c.path) for c in app_containers(manifests)}
    for manifest in workloads(manifests):
        spec = pod_spec(manifest.document) or {}
        pod_context = spec.get("securityContext", {})
        grace = spec.get("terminationGracePeriodSeconds")
        grace_path = f"{POD_SPEC_PATH}.terminationGracePeriodSeconds"
        for path, container in containers(manifest.document):
            findings += [
                manifest.finding(f"{path}.{where}", problem)
                for where, problem in _container_problems(
                    container, pod_context, probed=manifest.kind not in RUN_TO_COMPLETION_KINDS
                )
            ]
            deadline = SHUTDOWN_DEADLINE_SECONDS if (id(manifest), path) in app_paths else 0.0
            problem = _grace_problem(grace, pause=prestop_seconds(container), deadline=deadline)
            if problem is not None:
                findings.append(manifest.finding(grace_path, problem))
    return findings


def _grace_problem(grace: object, *, pause: float, deadline: float) -> str | None:
    """Why the grace period is too short for the preStop pause plus the process's own deadline."""
    needed = pause + deadline
    if isinstance(grace, int) and grace > needed:
        return None
    return (
        f"must be longer than {needed:g}s (preStop pause {pause:g}s + shutdown deadline "
        f"{deadline:g}s), is {grace}"
    )


def _container_problems(
    container: Document, pod_context: Document, *, probed: bool
) -> Iterator[tuple[str, str]]:
    yield from _security_problems(container.get("securityContext", {}), pod_context)
    resources = container.get("resources", {})
    for bound in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if resource not in resources.get(bound, {}):
                yield f"resources.{bound}.{resource}", "must be set"
    if probed:
        for probe in ("livenessProbe", "readinessProbe"):
            if not container.get(probe):
                yield probe, "must be set"
    if not container.get("lifecycle", {}).get("preStop"):
        yield "lifecycle.preStop", "must be set"


def _security_problems(context: Document, pod_context: Document) -> Iterator[tuple[str, str]]:
    if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
        yield "securityContext.runAsNonRoot", "must be true (here or in the pod's securityContext)"
    if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
        yield "securityContext.runAsUser", "must not be 0 (root)"
    if context.get("readOnlyRootFilesystem") is not True:
        yield "securityContext.readOnlyRootFilesystem", "must be true"
    if context.get("allowPrivilegeEscalation") is not False:
        yield "securityContext.allowPrivilegeEscalation", "must be false"
    if context.get("privileged") is True:
        yield "securityContext.privileged", "must not be true"
    capabilities = context.get("capabilities", {})
    if "ALL" not in capabilities.get("drop", []):
        yield "securityContext.capabilities.drop", "must drop ALL"
    if capabilities.get("add"):
        yield "securityContext.capabilities.add", "must add none"


def prestop_seconds(container: Document) -> float:
    """How long the preStop hook pauses: a `sleep` action or an exec of `sleep N`, else 0."""
    hook = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return float(hook["sleep"].get("seconds", 0))
    command = [str(part) for part in hook.get("exec", {}).get("command", [])]
    if len(command) == 2 and command[0] == "sleep" and command[1].isdigit():
        return float(command[1])
    return 0.0


# --- broker and databases ------------------------------------------------------------------------


def broker_replicas(manifests: Sequence[Manifest]) -> list[Finding]:
    findings = []
    for manifest in manifests:
        if manifest.kind != "RabbitmqCluster":
            continue
        replicas = manifest.document.get("spec", {}).get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 3 or replicas % 2 == 0:
            findings.append(
                manifest.finding(
                    "spec.replicas", f"must be odd and at least 3 (a quorum), is {replicas!r}"
                )
            )
    return findings


def quorum_queues(manifests: Sequence[Manifest]) -> list[Finding]:
    findings = []
    for manifest in manifests:
        if manifest.kind == "Queue":
            spec = manifest.document.get("spec", {})
            if spec.get("type") != "quorum":
                findings.append(
                    manifest.finding(
                        "spec.type",
                        f"queue {spec.get('name')} must be quorum, is {spec.get('type')}",
                    )
                )
            declared = spec.get("arguments", {}).get("x-queue-type", "quorum")
            if declared != "quorum":
                findings.append(
                    manifest.finding(
                        "spec.arguments.x-queue-type", f"must be quorum, is {declared}"
                    )
                )
        for key, definitions in _definitions_in(manifest):
            for index, queue in enumerate(definitions.get("queues", [])):
                kind = queue.get("arguments", {}).get("x-queue-type")
                if kind != "quorum":
                    findings.append(
                        manifest.finding(
                            f"data.{key}: queues[{index}].arguments.x-queue-type",
                            f"queue {queue.get('name')} must be quorum, is {kind}",
                        )
                    )
    return findings


def _definitions_in(manifest: Manifest) -> Iterator[tuple[str, Document]]:
    """RabbitMQ definitions documents a ConfigMap carries (the dev broker loads them at boot)."""
    if manifest.kind != "ConfigMap":
        return
    for key, text in manifest.document.get("data", {}).items():
        if key.endswith(".json"):
            document = json.loads(text)
            if isinstance(document, dict) and "queues" in document:
                yield key, document


def database_replication(manifests: Sequence[Manifest]) -> list[Finding]:
    findings = []
    for manifest in manifests:
        if manifest.kind != "Cluster" or not manifest.document["apiVersion"].startswith(
            "postgresql.cnpg.io/"
        ):
            continue
        spec = manifest.document.get("spec", {})
        instances = spec.get("instances", 1)
        if not isinstance(instances, int) or instances < 3:
            findings.append(
                manifest.finding("spec.instances", f"must be at least 3, is {instances}")
            )
        synchronous = spec.get("postgresql", {}).get("synchronous", {})
        standbys = synchronous.get("number", spec.get("minSyncReplicas", 0))
        if not isinstance(standbys, int) or standbys < 1:
            findings.append(
                manifest.finding(
                    "spec.postgresql.synchronous.number",
                    "at least one synchronous standby is required",
                )
            )
    return findings


def topology_matches_code(manifests: Sequence[Manifest]) -> list[Finding]:
    """The Messaging Topology Operator resources, and any definitions a ConfigMap carries,
    are exactly what the code declares."""
    findings = []
    declared = _declared_topology(manifests)
    if declared:
        anywhere = next(m for m in manifests if m.kind in TOPOLOGY_KINDS)
        for aspect, wanted in _expected_topology(TOPOLOGY).items():
            found = declared.get(aspect, {})
            for name in sorted(wanted.keys() | found.keys()):
                value, source = found.get(name, (None, anywhere))
                if wanted.get(name) != value:
                    findings.append(
                        source.finding(
                            "spec",
                            f"{aspect} {name}: broker/topology.py and broker/accounts.py declare "
                            f"{wanted.get(name)}, the manifests {value}",
                        )
                    )
    development = development_definitions()
    for manifest in manifests:
        for key, definitions in _definitions_in(manifest):
            if definitions != development:
                findings.append(
                    manifest.finding(
                        f"data.{key}",
                        "differs from broker.definitions.development_definitions(); "
                        "regenerate with `python -m broker k8s`",
                    )
                )
    return findings


TOPOLOGY_KINDS = frozenset(
    {"Vhost", "Exchange", "Queue", "Binding", "User", "Permission", "TopicPermission"}
)


def _expected_topology(topology: Topology) -> dict[str, dict[str, Any]]:
    exchange = topology.exchange
    accounts = {resource_name(account.service): account for account in SERVICE_ACCOUNTS}
    return {
        "exchange": {exchange.name: {"type": exchange.kind.value, "durable": True}},
        "queue": {
            name: arguments
            for queue in topology.queues
            for name, arguments in queue_declarations(queue).items()
        },
        "binding": {
            f"{exchange.name} -> {queue.name} [{key}]": True
            for queue in topology.queues
            for key in queue.bindings
        },
        "permission": {user: asdict(permissions(account)) for user, account in accounts.items()},
        "topic permission": {
            user: asdict(topic_permissions(account)) for user, account in accounts.items()
        },
    }


def _declared_topology(manifests: Sequence[Manifest]) -> dict[str, dict[str, Any]]:
    """What the topology resources declare, each with the resource that declares it."""
    service_users = {resource_name(account.service) for account in SERVICE_ACCOUNTS}
    declared: dict[str, dict[str, Any]] = {}
    for manifest in manifests:
        spec = manifest.document.get("spec", {})
        if manifest.kind == "Exchange":
            value = {"type": spec.get("type"), "durable": spec.get("durable")}
            declared.setdefault("exchange", {})[spec.get("name")] = (value, manifest)
        elif manifest.kind == "Queue":
            value = {"x-queue-type": spec.get("type"), **spec.get("arguments", {})}
            declared.setdefault("queue", {})[spec.get("name")] = (value, manifest)
        elif manifest.kind == "Binding":
            key = f"{spec.get('source')} -> {spec.get('destination')} [{spec.get('routingKey')}]"
            declared.setdefault("binding", {})[key] = (True, manifest)
        elif manifest.kind in {"Permission", "TopicPermission"}:
            user = spec.get("userReference", {}).get("name", spec.get("user"))
            if user in service_users:
                aspect = "permission" if manifest.kind == "Permission" else "topic permission"
                declared.setdefault(aspect, {})[user] = (spec.get("permissions"), manifest)
    return declared


# --- settings, probes, routes -------------------------------------------------------------------


def setting_names(settings_class: type[ServiceSettings]) -> frozenset[str]:
    """Every environment variable a settings class reads (upper case): its fields' aliases, or
    the field name where a field has none."""
    names: set[str] = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias or field.alias
        if alias is None:
            names.add(name.upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, AliasPath) and isinstance(alias.path[0], str):
            names.add(alias.path[0].upper())
    return frozenset(names)


def service_settings(package: str) -> type[ServiceSettings]:
    """The settings class a service's package defines in `<package>.settings`."""
    module = importlib.import_module(f"{package}.settings")
    found = [
        value
        for value in vars(module).values()
        if inspect.isclass(value)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise LookupError(f"{package}.settings defines {len(found)} ServiceSettings classes")
    return found[0]


def settings_are_read(
    manifests: Sequence[Manifest],
    names_of: Callable[[str], frozenset[str]] = lambda p: setting_names(service_settings(p)),
) -> list[Finding]:
    findings = []
    for app in app_containers(manifests):
        read = names_of(app.package)
        if app.container.get("envFrom"):
            findings.append(
                app.manifest.finding(
                    f"{app.path}.envFrom", "not checkable: set each setting with `env`"
                )
            )
        entries = app.env()
        parts = {
            reference
            for entry in entries
            if entry.get("name", "").upper() in read
            for reference in REFERENCE.findall(str(entry.get("value", "")))
        }
        defined: set[str] = set()
        for index, entry in enumerate(entries):
            name = str(entry.get("name", ""))
            where = f"{app.path}.env[{index}]"
            if name.upper() not in read and name not in parts:
                findings.append(
                    app.manifest.finding(
                        f"{where}.name",
                        f"{name} is not a setting {app.package} reads ({app.package}.settings), "
                        "nor a part of one",
                    )
                )
            for reference in REFERENCE.findall(str(entry.get("value", ""))):
                if reference not in defined:
                    findings.append(
                        app.manifest.finding(
                            f"{where}.value",
                            f"$({reference}) must be defined before {name} to be expanded",
                        )
                    )
            defined.add(name)
    return findings


def probes_match_roles(manifests: Sequence[Manifest]) -> list[Finding]:
    findings = []
    for app in app_containers(manifests):
        if app.role not in ROLE_PORT_SETTING:
            continue
        setting = ROLE_PORT_SETTING[app.role].format(SERVICE=app.package.upper())
        value = app.env_value(setting)
        if value is None or not value.isdigit():
            findings.append(
                app.manifest.finding(
                    f"{app.path}.env", f"the {app.role} role needs {setting} set to a port number"
                )
            )
            continue
        port = int(value)
        declared = [p.get("containerPort") for p in app.container.get("ports", [])]
        if port not in declared:
            findings.append(
                app.manifest.finding(
                    f"{app.path}.ports", f"must declare containerPort {port} ({setting})"
                )
            )
        for probe, path in (("livenessProbe", LIVENESS_PATH), ("readinessProbe", READINESS_PATH)):
            http = app.container.get(probe, {}).get("httpGet", {})
            target = _port_number(http.get("port"), app.container)
            if http.get("path") != path or target != port:
                findings.append(
                    app.manifest.finding(
                        f"{app.path}.{probe}.httpGet",
                        f"the {app.role} role serves {path} on port {port} ({setting}), "
                        f"probed: {http.get('path')} on port {http.get('port')}",
                    )
                )
    return findings


def service_arguments(manifests: Sequence[Manifest]) -> list[Finding]:
    findings = []
    for manifest in workloads(manifests):
        for path, container in containers(manifest.document):
            problem = _arguments_problem(container) if runs_service_image(container) else None
            if problem is not None:
                where, message = problem
                findings.append(manifest.finding(f"{path}.{where}", message))
    return findings


def _port_number(port: Any, container: Document) -> int | None:
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            return int(declared["containerPort"])
    return None


@cache
def openapi_paths(package: str) -> frozenset[str]:
    """The paths of a service's OpenAPI document, from its app built with default settings."""
    create_app: Callable[[ServiceSettings], FastAPI] = importlib.import_module(
        f"{package}.app"
    ).create_app
    document = create_app(service_settings(package)()).openapi()
    return frozenset(document.get("paths", {}))


@dataclass(frozen=True)
class Route:
    """One path of an Ingress, and the service whose api pods its backend Service selects."""

    ingress: Manifest
    where: str
    prefix: str
    package: str


def ingress_matches_openapi(
    manifests: Sequence[Manifest], paths_of: Callable[[str], frozenset[str]] = openapi_paths
) -> list[Finding]:
    """Every OpenAPI path reaches its own service's API through the Ingress, and nothing else."""
    routes, findings = _routes(manifests)
    packages = sorted(set(_api_package_by_service(manifests).values()))
    documents = {package: paths_of(package) for package in packages}
    for route in routes:
        findings += _route_problems(route, documents)
    for package in packages:
        for path in sorted(documents[package] - OPS_PATHS):
            if routes and not any(
                _under(path, route.prefix) for route in routes if route.package == package
            ):
                findings.append(
                    routes[0].ingress.finding(
                        "spec.rules", f"{package}'s {path} is not routed to it"
                    )
                )
    return findings


def _routes(manifests: Sequence[Manifest]) -> tuple[list[Route], list[Finding]]:
    api_package = _api_package_by_service(manifests)
    routes: list[Route] = []
    findings: list[Finding] = []
    for manifest in manifests:
        if manifest.kind != "Ingress":
            continue
        for r, rule in enumerate(manifest.document.get("spec", {}).get("rules", [])):
            for p, entry in enumerate(rule.get("http", {}).get("paths", [])):
                where = f"spec.rules[{r}].http.paths[{p}]"
                service = entry.get("backend", {}).get("service", {}).get("name")
                if service in api_package:
                    routes.append(
                        Route(manifest, where, str(entry.get("path", "")), api_package[service])
                    )
                else:
                    findings.append(
                        manifest.finding(
                            f"{where}.backend.service.name",
                            f"{service} is not the Service of a service's api pods",
                        )
                    )
    return routes, findings


def _route_problems(route: Route, documents: Mapping[str, frozenset[str]]) -> list[Finding]:
    where = f"{route.where}.path"
    matched = {path for path in documents[route.package] if _under(path, route.prefix)}
    findings = []
    if not matched - OPS_PATHS:
        findings.append(
            route.ingress.finding(where, f"{route.prefix} matches no path of {route.package}")
        )
    exposed = sorted(matched & OPS_PATHS)
    if exposed:
        findings.append(
            route.ingress.finding(where, f"{route.prefix} exposes {', '.join(exposed)}")
        )
    findings += [
        route.ingress.finding(
            where, f"{route.prefix} also matches paths of {other}, but goes to {route.package}"
        )
        for other, paths in documents.items()
        if other != route.package and any(_under(path, route.prefix) for path in paths)
    ]
    return findings


def _under(path: str, prefix: str) -> bool:
    """Whether an Ingress `Prefix` path matches `path` (whole segments, as Kubernetes does)."""
    prefix = prefix.rstrip("/")
    return path == prefix or path.startswith(f"{prefix}/") or not prefix


def _api_package_by_service(manifests: Sequence[Manifest]) -> dict[str, str]:
    """Each Service whose selector picks a service's api pods, and that service's package."""
    pods = [
        (app.manifest.document["spec"]["template"]["metadata"].get("labels", {}), app.package)
        for app in app_containers(manifests)
        if app.role in {"api", "all"} and app.manifest.kind == "Deployment"
    ]
    found = {}
    for manifest in manifests:
        if manifest.kind != "Service":
            continue
        selector: Mapping[str, str] = manifest.document.get("spec", {}).get("selector", {})
        for labels, package in pods:
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                found[manifest.name] = package
    return found


RULES: tuple[Rule, ...] = (
    container_rules,
    broker_replicas,
    quorum_queues,
    database_replication,
    topology_matches_code,
    settings_are_read,
    probes_match_roles,
    ingress_matches_openapi,
    service_arguments,
)


def check(manifests: Sequence[Manifest], rules: Iterable[Rule] = RULES) -> list[Finding]:
    return [finding for rule in rules for finding in rule(manifests)]
