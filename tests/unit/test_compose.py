"""compose.yaml, checked offline: the services, their start order and the contract's environment.

`docker compose up` is the one-command way to run the whole system; these tests keep it wired the
way CONTRACT.md says without needing Docker (nothing here starts a container). They also keep its
broker set-up in step with the code: RabbitMQ loads `broker/definitions.json` at boot, which must
be what `python -m broker definitions` renders from the topology and the service accounts, and
each service connects as its own account with the password those definitions give it. Both
count their rate limits in the one Redis, so that replicas share a limit. Every service runs the
one image the root Dockerfile builds, its command naming the service and its role.
"""

from __future__ import annotations

import json
import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from broker.accounts import SERVICE_ACCOUNTS, ServiceAccount
from broker.definitions import DEVELOPMENT_VHOST, development_definitions, to_json
from inventory_svc.settings import InventorySettings
from order_svc.settings import OrderSettings
from shared.runtime.roles import Role
from shared.settings import ServiceSettings
from user_svc.settings import UserSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DEFINITIONS_FILE = REPO_ROOT / "broker" / "definitions.json"

BACKING_SERVICES = ("postgres", "rabbitmq", "redis")
APP_SERVICES = ("user_svc", "order_svc", "inventory_svc")
SETTINGS: dict[str, type[ServiceSettings]] = {
    "user_svc": UserSettings,
    "order_svc": OrderSettings,
    "inventory_svc": InventorySettings,
}
VERIFYING_SERVICES = ("order_svc", "inventory_svc")
CONTRACT_ENV = {
    "user_svc": (
        "USER_SVC_DATABASE_URL",
        "AMQP_URL",
        "JWT_SECRET",
        "USER_SVC_PORT",
        "RATE_LIMIT_STORAGE_URL",
        "ADMIN_EMAILS",
    ),
    "order_svc": (
        "ORDER_SVC_DATABASE_URL",
        "AMQP_URL",
        "JWKS_URL",
        "ORDER_SVC_PORT",
        "RATE_LIMIT_STORAGE_URL",
    ),
    "inventory_svc": (
        "INVENTORY_SVC_DATABASE_URL",
        "AMQP_URL",
        "JWKS_URL",
        "INVENTORY_SVC_PORT",
        "RATE_LIMIT_STORAGE_URL",
    ),
}


def load_compose() -> Any:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = load_compose()["services"]
    return loaded


def environment_of(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's environment, whether written as a mapping or as a list of KEY=VALUE."""
    environment = service.get("environment") or {}
    if isinstance(environment, dict):
        return {key: None if value is None else str(value) for key, value in environment.items()}
    pairs = (entry.partition("=") for entry in environment)
    return {key: value if sep else None for key, sep, value in pairs}


def mounts_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts and volumes (short syntax), container path -> source."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = str(volume).split(":")
        mounts[target] = source
    return mounts


def mounted_file(service: dict[str, Any], target: str) -> Path:
    """The repository file bind-mounted at `target` in the container."""
    source = mounts_of(service)[target]
    assert source.startswith("./"), f"{target} is not mounted from the repository: {source}"
    return REPO_ROOT / source


def rabbitmq_config(service: dict[str, Any]) -> dict[str, str]:
    """Every `key = value` of the rabbitmq.conf files compose mounts into the container."""
    settings: dict[str, str] = {}
    for target in mounts_of(service):
        if target == "/etc/rabbitmq/rabbitmq.conf" or (
            target.startswith("/etc/rabbitmq/conf.d/") and target.endswith(".conf")
        ):
            for line in mounted_file(service, target).read_text(encoding="utf-8").splitlines():
                key, sep, value = line.partition("=")
                if sep and not line.lstrip().startswith("#"):
                    settings[key.strip()] = value.strip()
    return settings


def dockerfile_of(service: dict[str, Any]) -> Path:
    build = service["build"]
    if isinstance(build, str):
        context, dockerfile = build, "Dockerfile"
    else:
        context, dockerfile = build.get("context", "."), build.get("dockerfile", "Dockerfile")
    return REPO_ROOT / str(context) / str(dockerfile)


def instructions(dockerfile: Path, instruction: str) -> list[str]:
    """The arguments of every `instruction` (ENV, CMD, ...), continuation lines joined."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    return [
        line.strip()[len(instruction) :].strip()
        for line in text.splitlines()
        if line.strip().upper().startswith(f"{instruction} ")
    ]


def final_instruction(dockerfile: Path, instruction: str) -> list[str]:
    """The exec form of the `instruction` (CMD, ENTRYPOINT) that takes effect: the last one."""
    found = instructions(dockerfile, instruction)
    assert found, f"{dockerfile} has no {instruction}"
    words: list[str] = json.loads(found[-1])
    return words


def image_environment(dockerfile: Path) -> dict[str, str]:
    """The variables the image's ENV instructions set (KEY=VALUE form, values without spaces)."""
    pairs = (
        word.partition("=") for found in instructions(dockerfile, "ENV") for word in found.split()
    )
    return {key: value for key, _, value in pairs}


def builders(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services.items() if "build" in service}


def test_compose_file_parses_as_a_mapping_of_services() -> None:
    compose = load_compose()

    assert isinstance(compose, dict)
    assert isinstance(compose.get("services"), dict)


def test_compose_defines_the_backing_services_and_every_app_service(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {*BACKING_SERVICES, *APP_SERVICES} <= services.keys()


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    without = [
        name
        for name, service in services.items()
        if not service.get("healthcheck", {}).get("test")
        or service["healthcheck"].get("disable", False)
    ]

    assert without == []


def test_every_dependency_is_awaited_until_healthy(services: dict[str, dict[str, Any]]) -> None:
    not_awaited = []
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        # The short (list) form means "started", which is not "ready".
        if isinstance(depends_on, list):
            not_awaited += [f"{name} -> {dependency}" for dependency in depends_on]
            continue
        not_awaited += [
            f"{name} -> {dependency}"
            for dependency, options in depends_on.items()
            if (options or {}).get("condition") != "service_healthy"
        ]

    assert not_awaited == []


@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_service_depends_on_every_backing_service(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    assert set(BACKING_SERVICES) <= set(services[app].get("depends_on", {}))


@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_service_sets_the_contract_environment(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    missing = [name for name in CONTRACT_ENV[app] if name not in environment_of(services[app])]

    assert missing == []


@pytest.mark.parametrize("app", VERIFYING_SERVICES)
def test_a_verifying_service_holds_no_token_signing_secret(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    environment = environment_of(services[app])

    assert {"JWT_SECRET", "JWT_PRIVATE_KEY_FILE"}.isdisjoint(environment)


@pytest.mark.parametrize("app", VERIFYING_SERVICES)
def test_a_verifying_service_fetches_token_keys_from_user_svc(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    jwks_url = urlsplit(environment_of(services[app])["JWKS_URL"] or "")

    assert (jwks_url.hostname, jwks_url.port, jwks_url.path) == (
        "user_svc",
        8001,
        "/.well-known/jwks.json",
    )


@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_service_reaches_backing_services_by_their_service_names(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    environment = environment_of(services[app])

    assert urlsplit(environment[f"{app.upper()}_DATABASE_URL"]).hostname == "postgres"
    assert urlsplit(environment["AMQP_URL"]).hostname == "rabbitmq"
    assert urlsplit(environment["RATE_LIMIT_STORAGE_URL"]).hostname == "redis"


@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_service_healthcheck_probes_readyz(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    test = services[app]["healthcheck"]["test"]
    command = test if isinstance(test, str) else " ".join(test)

    assert "/readyz" in command


def test_one_service_builds_the_image_from_the_root_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    """Compose builds an image once per service with a `build`: a second would build it again."""
    [builder] = builders(services).values()

    assert dockerfile_of(builder) == DOCKERFILE
    assert DOCKERFILE.is_file()
    assert builder.get("image")


@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_service_runs_the_one_image(services: dict[str, dict[str, Any]], app: str) -> None:
    [builder] = builders(services).values()

    assert services[app]["image"] == builder["image"]


def test_the_services_that_run_the_built_image_never_pull_it(
    services: dict[str, dict[str, Any]],
) -> None:
    [builder] = builders(services).values()
    pulling = [
        name
        for name, service in services.items()
        if service.get("image") == builder["image"]
        and "build" not in service
        and service.get("pull_policy") != "never"
    ]

    assert pulling == []


@pytest.mark.parametrize("app", APP_SERVICES)
def test_app_service_command_names_its_module_and_a_role(
    services: dict[str, dict[str, Any]], app: str
) -> None:
    module, role = services[app]["command"]

    assert module == app
    assert find_spec(f"{module}.__main__") is not None
    assert role in set(Role)


def test_image_runs_the_module_its_arguments_name() -> None:
    module, role = final_instruction(DOCKERFILE, "CMD")

    assert final_instruction(DOCKERFILE, "ENTRYPOINT") == ["python", "-m"]
    assert module in APP_SERVICES
    assert role in set(Role)


@pytest.mark.parametrize("app", APP_SERVICES)
def test_image_makes_every_service_listen_on_all_interfaces_on_an_exposed_port(
    monkeypatch: pytest.MonkeyPatch, app: str
) -> None:
    for name in list(os.environ):
        if name.upper().startswith(f"{app.upper()}_"):
            monkeypatch.delenv(name)
    exposed = {int(port) for found in instructions(DOCKERFILE, "EXPOSE") for port in found.split()}

    settings = SETTINGS[app].model_validate(image_environment(DOCKERFILE))

    assert settings.host == "0.0.0.0"
    assert settings.port in exposed


def test_every_published_port_is_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    exposed = [
        f"{name}: {port}"
        for name, service in services.items()
        for port in service.get("ports", [])
        if not str(port).startswith("127.0.0.1:")
    ]

    assert exposed == []


def test_committed_broker_definitions_are_the_generated_ones() -> None:
    """Regenerate with `python -m broker definitions > broker/definitions.json`."""
    assert DEFINITIONS_FILE.read_text(encoding="utf-8") == to_json(development_definitions())


def test_rabbitmq_loads_the_committed_definitions_at_boot(
    services: dict[str, dict[str, Any]],
) -> None:
    rabbitmq = services["rabbitmq"]
    target = rabbitmq_config(rabbitmq).get("load_definitions")

    assert target is not None
    assert mounted_file(rabbitmq, target).resolve() == DEFINITIONS_FILE


@pytest.mark.parametrize("account", SERVICE_ACCOUNTS, ids=lambda account: account.service)
def test_app_service_connects_to_the_broker_as_its_own_account(
    services: dict[str, dict[str, Any]], account: ServiceAccount
) -> None:
    url = urlsplit(environment_of(services[account.service])["AMQP_URL"])
    passwords = {user["name"]: user["password"] for user in development_definitions()["users"]}

    assert url.username == account.user()
    assert url.password == passwords[account.user()]
    assert url.path == f"/{DEVELOPMENT_VHOST}"
