"""The AsyncAPI document's servers and vhosts are where each deployment really has its broker.

Read from the deployments themselves, offline: the contract's default broker URL (`make run`, the
tests), compose.yaml, and the Kubernetes manifests under deploy/k8s (the services' AMQP_URL and
the vhost every generated topology resource is declared in).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

import pytest
import yaml

from broker import catalogue
from shared.messaging.publish import DEFAULT_AMQP_URL

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
AMQP_URL = re.compile(r"amqp://[^\s\"']+")
VHOST_FIELD = re.compile(r"^\s*vhost:\s*(\S+)\s*$", re.MULTILINE)


def servers() -> dict[str, Any]:
    document = json.loads((catalogue.DEFAULT_DIR / catalogue.ASYNCAPI_FILE).read_text("utf-8"))
    found: dict[str, Any] = document["servers"]
    return found


def vhost_of(url: SplitResult) -> str:
    """The vhost of an AMQP URI: its path, decoded; none at all is the default `/`."""
    return unquote(url.path[1:]) if len(url.path) > 1 else "/"


def server_vhost(name: str) -> str:
    return unquote(servers()[name]["pathname"][1:])


def compose_amqp_urls() -> list[SplitResult]:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text("utf-8"))
    urls = [
        urlsplit(service["environment"]["AMQP_URL"])
        for service in compose["services"].values()
        if "AMQP_URL" in service.get("environment", {})
    ]
    assert urls, "no service in compose.yaml sets AMQP_URL"
    return urls


def k8s_amqp_urls() -> list[SplitResult]:
    urls = [
        urlsplit(url)
        for path in sorted(K8S_DIR.rglob("*.yaml"))
        for url in AMQP_URL.findall(path.read_text("utf-8"))
    ]
    assert urls, "no AMQP_URL in deploy/k8s"
    return urls


def k8s_topology_vhosts() -> set[str]:
    vhosts = {
        vhost
        for path in sorted((K8S_DIR / "overlays").rglob("*.yaml"))
        for vhost in VHOST_FIELD.findall(path.read_text("utf-8"))
    }
    assert vhosts, "no resource in deploy/k8s/overlays names a vhost"
    return vhosts


def test_the_local_server_is_the_contracts_default_broker() -> None:
    default = urlsplit(DEFAULT_AMQP_URL)

    assert servers()["local"]["host"] == default.netloc.rsplit("@", 1)[1]
    assert server_vhost("local") == vhost_of(default) == "/"


def test_the_compose_server_is_the_broker_compose_connects_the_services_to() -> None:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text("utf-8"))

    assert {vhost_of(url) for url in compose_amqp_urls()} == {server_vhost("compose")}
    assert f"{servers()['compose']['host']}:5672" in compose["services"]["rabbitmq"]["ports"]


def test_the_kubernetes_server_is_the_broker_the_manifests_connect_the_services_to() -> None:
    urls = k8s_amqp_urls()

    assert {f"{url.hostname}:{url.port}" for url in urls} == {servers()["kubernetes"]["host"]}
    assert {vhost_of(url) for url in urls} == {server_vhost("kubernetes")}


def test_the_kubernetes_topology_is_declared_in_the_kubernetes_servers_vhost() -> None:
    assert k8s_topology_vhosts() == {server_vhost("kubernetes")}


@pytest.mark.parametrize("deployment", ["compose", "kubernetes"])
def test_channel_bindings_name_the_vhost_of_the_deployments(deployment: str) -> None:
    document = json.loads((catalogue.DEFAULT_DIR / catalogue.ASYNCAPI_FILE).read_text("utf-8"))
    bound = {
        binding.get("exchange", binding.get("queue", {}))["vhost"]
        for channel in document["channels"].values()
        for binding in [channel["bindings"]["amqp"]]
    }

    assert bound == {server_vhost(deployment)}
